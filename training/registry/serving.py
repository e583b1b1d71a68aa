"""What a packaged service will serve, made ready from the registry before anything is built.

A Bento packs the BentoML models its service config names (the service declares them). Before
`make container` touches Docker, `prepare(config)` makes sure each is there and is the right
one: `botify-champion-lists` must hold the current `@champion`'s lists, trained on the config's
catalog (exported from the registry here when the store lacks it or holds another version's: a
job with `deploy: null`, or a promotion made by another machine); any other model (the
experiment's `botify-baseline-lists`) must be in the store. When something cannot be made here
it raises `NotServable`, whose message names the command that makes it (`make experiment`,
`make loop`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from formats.catalog import expected_tracks
from service.config import bentoml_models, read_config
from training.errors import JobError
from training.paths import REPO
from training.registry import tracking
from training.registry.export import SERVED

MAKES_CHAMPION = ("`make experiment` (its A/B's winner, or its baseline when the registry has no champion yet) "
                  "or `make loop` (day 0 bootstraps one)")


class NotServable(JobError):
    """A model the config serves is missing and cannot be made from the registry here."""


@dataclass(frozen=True)
class Ready:
    tag: str                 # the BentoML model the Bento will pack, e.g. botify-champion-lists:abc
    role: str                # champion | baseline | "" (another name)
    version: str             # the registry version it holds ("" when its labels do not say)
    exported: bool           # exported just now from the registry


def prepare(config: str | Path, name: str = tracking.MODEL_NAME, root: Path = REPO) -> list[Ready]:
    """Each BentoML model `config` serves, ready in the store; NotServable (naming the command
    that makes it) for one that cannot be made here."""
    path = Path(config) if Path(config).is_absolute() else root / config
    cfg = read_config(path)
    catalog = Path(cfg["catalog"]) if Path(cfg["catalog"]).is_absolute() else root / cfg["catalog"]
    if not catalog.is_file():
        raise NotServable(f"{config} serves the catalog {cfg['catalog']}, which does not exist: "
                          f"`make world` (python -m sim.world --config sim/config/env.yml) makes it")
    roles = {v: k for k, v in SERVED.items()}
    out = []
    for tag in bentoml_models(cfg):
        model, _, version = tag.partition(":")
        role = roles.get(model, "")
        if role == "champion" and version in ("", "latest"):
            out.append(_champion(model, name, expected_tracks(catalog), config))
        else:
            out.append(_stored(tag, role, config))
    return out


def _champion(model: str, name: str, tracks: int | None, config: str | Path) -> Ready:
    """`model:latest` holding `name@champion`'s lists: kept if it does, exported if not, under the
    promotion lock (so no promotion moves the alias between the lookup and the export)."""
    from mlflow import MlflowClient

    from training.registry.export import import_version
    from training.registry.lock import promotion_lock
    uri = tracking.setup()
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        raise NotServable(f"{config} serves `{name}@{tracking.CHAMPION}`'s lists, and there is no registry yet "
                          f"({tracking.safe_uri(uri)}): {MAKES_CHAMPION} makes the champion; then run this again")
    with promotion_lock(name):
        version = tracking.champion_version(name)
        if version is None:
            raise NotServable(f"{config} serves `{name}@{tracking.CHAMPION}`'s lists, and `{name}` has no "
                              f"@{tracking.CHAMPION} in {tracking.safe_uri(uri)}: {MAKES_CHAMPION} makes one; "
                              f"then run this again")
        mv = MlflowClient().get_model_version(name, version)
        trained = MlflowClient().get_run(mv.run_id).data.params.get("catalog_tracks")
        if tracks is not None and trained is not None and int(trained) != tracks:
            raise NotServable(f"`{name}@{tracking.CHAMPION}` (version {version}) was trained on a {trained}-track "
                              f"catalog, and {config} serves one of {tracks} tracks: {MAKES_CHAMPION} on this "
                              f"world makes a champion for it")
        have = _latest(model)
        if have is not None and have.info.labels.get("mlflow_model") == name \
                and have.info.labels.get("mlflow_version") == version:
            return Ready(str(have.tag), "champion", version, exported=False)
        tag = import_version(version, bento_name=model, name=name, role="champion")
        return Ready(tag, "champion", version, exported=True)


def _stored(tag: str, role: str, config: str | Path) -> Ready:
    import bentoml
    try:
        model = bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        make = ("`make experiment` (it exports the baseline it tested against)" if role == "baseline" else
                f"`mlflow run . -e to_bentoml --env-manager local -P model=VERSION -P bento_name={tag.split(':')[0]}`")
        raise NotServable(f"{config} serves BentoML model {tag}, which is not in the store: {make} makes it") from None
    return Ready(str(model.tag), role, model.info.labels.get("mlflow_version", ""), exported=False)


def _latest(model: str):
    """`model:latest` from the BentoML store, or None."""
    import bentoml
    try:
        return bentoml.models.get(f"{model}:latest")
    except bentoml.exceptions.NotFound:
        return None
