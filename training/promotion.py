"""Promotion: what the A/B table must show for a model version to become `@champion`,
and the two acts of promoting (deploy what was proven, then move the alias).

What is promoted is a model, so the decision rests on the model effect of the 2x2 (the
treatment model's lists vs the control model's under the policy the product serves), never
on a contrast that also changes the policy. Only a finished experiment reaches `promote`;
the decision is a pure function of the 2x2's table, so a reader (and a test) can check it
against the report.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from training import tracking
from training.errors import JobError


def rule(promotion: dict) -> str:
    """The promotion rule in words, as the report and the run's `promotion_reason` state it."""
    holm = promotion.get("correction", "holm") == "holm"
    return (f"promote the treatment model when its lists beat the control model's under "
            f"{promotion['policy']} (the policy the product serves) on `{promotion['metric']}`, "
            + ("significant after Holm across the model-effect family (the model effect under each policy)"
               if holm else "significant (no multiple-comparison correction)")
            + ", with the sample-ratio check passing; what is promoted is a model, so its decision is the "
              "model effect, never the policy effect or the seed's headline (which changes both)")


def decide(table: pd.DataFrame, promotion: dict) -> tuple[bool, str]:
    """Promote the treatment model only on its own effect: its lists vs the control model's
    under one policy, significant and positive, SRM passing.

    Two ways to name that effect, one verdict:
    * `promotion["policy"]`: `table` is the 2x2 (`training.analysis.factorial_table`) and the
      row is its model effect under that policy; Holm is across the 2x2's model-effect family
      (the experiment's rule);
    * `promotion["treatment"]`, `promotion["baseline"]`: the row of `table` comparing those two
      arms, whose caller has set `p_holm` over its own model-effect family (the daily loop).
    The reason names the effect, its intervals and p-values, so a run's `promotion_reason`
    says why.
    """
    m = promotion["metric"]
    holm = promotion.get("correction", "holm") == "holm"
    if "policy" in promotion:
        policy = promotion["policy"]
        fam = table[(table["family"] == "model") & (table["metric"] == m)]
        sel = fam[fam["given"] == policy]
        if sel.empty:
            return False, f"not promoted: the 2x2 has no model effect under {policy} on {m}"
        head = f"decided by the model effect (treatment vs control lists under {policy})"
        family = f" (model-effect family of {len(fam)})"
        what = f"model effect under {policy} on {m}"
    else:
        t, c = promotion["treatment"], promotion["baseline"]
        sel = table[(table["treatment"] == t) & (table["control"] == c) & (table["metric"] == m)]
        if sel.empty:
            return False, f"not promoted: the table has no row {t} vs {c} on {m}"
        head, family, what = f"decided by {t} vs {c}", "", f"{t} vs {c} on {m}"
    r = sel.iloc[0]
    name = f"{what}, {r['treatment_name']} ({r['treatment']}) vs {r['control_name']} ({r['control']})"
    ratio = (f", ratio CI [{r['lower_ratio']:+.1f}, {r['upper_ratio']:+.1f}]" if "lower_ratio" in r.index else "")
    figures = (f"effect {r['effect']:+.1f}%, course CI [{r['lower']:+.1f}, {r['upper']:+.1f}]{ratio}, "
               f"p = {r['p_value']:.2g}" + (f", Holm p = {r['p_holm']:.2g}{family}" if holm else ""))
    if not bool(r["valid"]):
        return False, (f"not promoted, {head}: the sample-ratio check failed (p = {r['srm_p_value']:.2g}), "
                       f"the table is invalid; {name}: {figures}")
    sig = bool(r["significant_holm"] if holm else r["significant"])
    if sig and r["effect"] > 0:
        return True, f"{head}: {name}: {figures}, significant{' after Holm' if holm else ''}"
    why = ("not significant" + (" after Holm" if holm else "")) if not sig else "significantly worse"
    return False, f"not promoted, {head}: {name}: {figures}, {why}"


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
