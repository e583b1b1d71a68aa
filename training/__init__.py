"""Botify's offline half: the service's logs become tracked, versioned embedding models.

training/ reads only the public catalog and the service's event logs; it runs the
simulator only as a command and never imports `sim`.
"""

import os as _os

# No pickle is ever deserialized by the project's processes: Botify's models are plain arrays
# and a JSON spec (training.learning.model), and MLflow's loaders refuse pickled models with this off
# (it defaults to on in MLflow 3.17). Set here, so every entry point and every subprocess it
# starts inherits it.
_os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"
