"""Before `make container` builds anything: the models the Bento will serve are in the BentoML
store and are the registry's (training.registry.serving), or a message naming the command that
makes what is missing, and exit status 2.

    python -m training.jobs.container_check                       # the Bento's config (bentofile.yaml's args)
    python -m training.jobs.container_check --config service/config/experiments.yml
"""
from __future__ import annotations

import argparse
import sys

import yaml

from training.paths import REPO
from training.registry import tracking
from training.errors import JobError
from training.registry.serving import prepare


def bento_config(bentofile: str = "bentofile.yaml") -> str:
    """The config a Bento built from `bentofile` serves: its `args.config`."""
    return str((yaml.safe_load((REPO / bentofile).read_text()).get("args") or {})["config"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="", help="the service config the Bento serves (default: bentofile.yaml's)")
    ap.add_argument("--name", default=tracking.MODEL_NAME, help="the registered MLflow model whose @champion it serves")
    args = ap.parse_args(argv)
    config = args.config or bento_config()
    try:
        ready = prepare(config, name=args.name)
    except (JobError, tracking.RegistryError) as e:   # NotServable, LockError: the message names the fix
        print(f"container check: {e}", file=sys.stderr)
        return 2
    for r in ready:
        what = f"{r.role}, {args.name} version {r.version}" if r.version else r.role or "as stored"
        print(f"container check: {r.tag} ({what}{'; exported from the registry now' if r.exported else ''})")
    print(f"container check: {config} can be served" + ("" if ready else " (it names no BentoML model)"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
