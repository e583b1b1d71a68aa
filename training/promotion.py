"""Promotion: what the A/B table must show for a model version to become `@champion`,
and the two acts of promoting (deploy what was proven, then move the alias).

Only a finished experiment reaches `promote`; the decision is a pure function of the
table, so a reader (and a test) can check it against the report.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from training import tracking
from training.errors import JobError
from training.settings import repo_path


def decide(table: pd.DataFrame, promotion: dict) -> tuple[bool, str]:
    """Promote only on a significant win of the treatment arm over the baseline arm, SRM passing."""
    t, c, m = promotion["treatment"], promotion["baseline"], promotion["metric"]
    sel = table[(table["treatment"] == t) & (table["control"] == c) & (table["metric"] == m)]
    if sel.empty:
        return False, f"not promoted: the table has no row {t} vs {c} on {m}"
    r = sel.iloc[0]
    name = f"{r['treatment_name']} ({t}) vs {r['control_name']} ({c}) on {m}"
    figures = (f"effect {r['effect']:+.1f}% [{r['lower']:+.1f}, {r['upper']:+.1f}], "
               f"p = {r['p_value']:.2g}, Holm p = {r['p_holm']:.2g}")
    if not bool(r["valid"]):
        return False, f"not promoted: the sample-ratio check failed (p = {r['srm_p_value']:.2g}), the table is invalid; {name}: {figures}"
    holm = promotion.get("correction", "holm") == "holm"
    sig = bool(r["significant_holm"] if holm else r["significant"])
    if sig and r["effect"] > 0:
        return True, f"{name}: {figures}, significant{' after Holm' if holm else ''}"
    why = "not significant" + (" after Holm" if holm else "") if not sig else "significantly worse"
    return False, f"not promoted: {name}: {figures}, {why}"


def deploy(targets: dict, files: dict[str, Path]) -> dict[str, Path]:
    """Copy the winning experiment's i2i files where the packaged service reads them.

    `bentoml build` packages `data/i2i/*.jsonl` and `service/config/experiments.yml` serves
    `data/i2i/control.jsonl` and `treatment.jsonl`: after a promotion they are the lists
    the experiment proved, so the next build ships the champion. Written atomically.
    """
    out: dict[str, Path] = {}
    for role, dest in targets.items():
        if role not in files:
            raise JobError(f"promotion.deploy names {role!r}; models are {sorted(files)}")
        d = repo_path(dest)
        d.parent.mkdir(parents=True, exist_ok=True)
        tmp = d.with_name(d.name + ".tmp")
        tmp.write_bytes(Path(files[role]).read_bytes())
        tmp.replace(d)
        out[role] = d
    return out


def promote(version: str, name: str = tracking.MODEL_NAME) -> None:
    """Move `@champion` to `version`: the last act of a promotion, after its deploy."""
    from mlflow import MlflowClient
    MlflowClient().set_registered_model_alias(name, tracking.CHAMPION, version)
