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


def deploy(targets: dict[str, str], versions: dict[str, str], name: str = tracking.MODEL_NAME,
           i2i: dict[str, Path] | None = None) -> dict[str, str]:
    """Export the proven versions into the BentoML models the packaged service serves.

    `targets` (the config's `promotion.deploy`): role → BentoML model name, the names
    `service/config/experiments.yml` and `bentofile.yaml` use as `NAME:latest`; `versions`:
    role → registry version; `i2i`: role → the lists served in the A/B test, so the Bento
    serves exactly what was proven. One export step per role (training.to_bentoml), with
    the lineage as labels; no file is copied. Returns role → BentoML tag.
    """
    from training.to_bentoml import deploy as export
    unknown = sorted(set(targets) - set(versions))
    if unknown:
        raise JobError(f"promotion.deploy names {unknown}; models are {sorted(versions)}")
    return export(versions, targets, name=name, i2i=i2i)


def promote(version: str, name: str = tracking.MODEL_NAME) -> None:
    """Move `@champion` to `version`: the last act of a promotion, after its deploy."""
    from mlflow import MlflowClient
    MlflowClient().set_registered_model_alias(name, tracking.CHAMPION, version)
