# The tracking server: PostgreSQL from Debian's package and `mlflow server` on it, run by
# deploy/tracking_server.py (the code `make tracking-server` runs) in the foreground.
# PACKAGES: MLflow and the PostgreSQL driver pinned as requirements.txt pins them (deploy/images.sh).
ARG BASE=botify-base:bookworm-py311
FROM ${BASE}
ARG PACKAGES
# no service starts while apt-get runs: the package's own cluster is never used
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
    && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /usr/sbin/policy-rc.d
RUN python3 -m venv /opt/tracking && /opt/tracking/bin/pip install --no-cache-dir --disable-pip-version-check $PACKAGES
COPY __init__.py tracking_server.py /opt/botify/deploy/
WORKDIR /opt/botify
ENTRYPOINT ["/opt/tracking/bin/python", "-m", "deploy.tracking_server", "run", "--dir", "/tracking"]
