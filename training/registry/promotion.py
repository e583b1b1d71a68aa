"""Promotion: what the A/B table must show for a model version to become `@champion`,
and the two acts of promoting (deploy what was proven, then move the alias).

What is promoted is a model, so the decision rests on the model effect of the 2x2 (the
treatment model's lists vs the control model's under the policy the product serves), never
on a contrast that also changes the policy. Only a finished experiment reaches `promote`;
the decision is a pure function of the 2x2's table, so a reader (and a test) can check it
against the report.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from training.errors import JobError
from training.registry import tracking
from training.registry.lock import promotion_lock


TESTS = ("superiority", "non_inferiority")


def criterion(promotion: dict) -> str:
    """What the model effect must show, in words: the one place both rules are phrased."""
    if promotion.get("test", "superiority") == "non_inferiority":
        return (f"ahead (a positive estimate) and not worse by more than {float(promotion['margin']):g}% "
                f"(the 95% CI's lower bound above -{float(promotion['margin']):g}%: a non-inferiority test)")
    holm = promotion.get("correction", "holm") == "holm"
    return ("significant after Holm across the model-effect family (the model effect under each policy)"
            if holm else "significant (no multiple-comparison correction)")


def rule(promotion: dict) -> str:
    """The promotion rule in words, as the report and the run's `promotion_reason` state it."""
    return (f"promote the treatment model when its lists beat the control model's under "
            f"{promotion['policy']} (the policy the product serves) on `{promotion['metric']}`, "
            + criterion(promotion)
            + ", with the sample-ratio check passing; what is promoted is a model, so its decision is the "
              "model effect, never the policy effect or the seed's headline (which changes both)")


def decide(table: pd.DataFrame, promotion: dict) -> tuple[bool, str]:
    """Promote the treatment model only on its own effect: its lists vs the control model's
    under one policy, SRM passing, and by `promotion["test"]`:
    * "superiority" (the default, the experiment's): significant and positive;
    * "non_inferiority" (the daily loop's, `margin` in percent): a positive estimate whose
      95% CI's lower bound is above -margin. A challenger re-trained on fresher logs is
      expected to be a little better each day, by less than a day's A/B can prove (the loop
      measured +3-10% against CIs of about +-12%), so requiring significance keeps a stale
      champion; this promotes what is ahead unless it may be worse by more than the margin.

    Two ways to name that effect, one verdict:
    * `promotion["policy"]`: `table` is the 2x2 (`training.ab.analysis.factorial_table`) and the
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
    if promotion.get("test", "superiority") == "non_inferiority":
        margin = float(promotion["margin"])
        if r["effect"] > 0 and r["lower"] > -margin:
            return True, (f"{head}: {name}: {figures}, ahead and not worse by more than {margin:g}% "
                          f"(non-inferiority: the CI's lower bound {r['lower']:+.1f}% > -{margin:g}%)")
        why = ("not ahead (the estimate is not positive)" if r["effect"] <= 0 else
               f"it may be worse by more than {margin:g}% (the CI's lower bound {r['lower']:+.1f}% <= -{margin:g}%)")
        return False, f"not promoted, {head}: {name}: {figures}, {why}"
    sig = bool(r["significant_holm"] if holm else r["significant"])
    if sig and r["effect"] > 0:
        return True, f"{head}: {name}: {figures}, significant{' after Holm' if holm else ''}"
    why = ("not significant" + (" after Holm" if holm else "")) if not sig else "significantly worse"
    return False, f"not promoted, {head}: {name}: {figures}, {why}"


def deploy(targets: dict[str, str], versions: dict[str, str], name: str = tracking.MODEL_NAME,
           i2i: dict[str, Path] | None = None) -> dict[str, str]:
    """Export the proven versions into the BentoML models the packaged service serves.

    `targets` (a job's `promotion.deploy`): role → BentoML model name (`champion`:
    botify-champion-lists, what the product serves; `baseline`: botify-baseline-lists, the
    status quo the experiment compared it with); `versions`: role → registry version; `i2i`:
    role → the lists served in the A/B test, so the service serves exactly what was proven.
    One export per role (training.registry.export), the lineage as labels. Every role is
    exported before this returns, so the alias moved afterwards is never unserved.
    Returns role → BentoML tag.
    """
    from training.registry.export import import_version
    unknown = sorted(set(targets) - set(versions))
    if unknown:
        raise JobError(f"promotion.deploy names {unknown}; models are {sorted(versions)}")
    return {role: import_version(versions[role], bento_name=target, name=name, i2i=(i2i or {}).get(role), role=role)
            for role, target in targets.items()}


def promote(version: str, name: str = tracking.MODEL_NAME) -> None:
    """Move `@champion` to `version`: the last act of a promotion, after its deploy."""
    from mlflow import MlflowClient
    MlflowClient().set_registered_model_alias(name, tracking.CHAMPION, version)


# --------------------------------------------------------------------------- the commit
# Two runs may finish at once (two terminals, a scheduler, two machines sharing one tracking
# server): without a lock both read `@champion`, both deploy, and the models served can belong
# to one version while the alias names the other. The commit below holds the promotion lock
# (training.registry.lock: an flock beside a local store, a PostgreSQL advisory lock for a
# shared one) and is atomic with what it deploys: deploy first, the alias last, and on any
# failure the BentoML models it created are deleted again (`NAME:latest` is then what it was),
# so the alias never names a version other than the one served.


@dataclass
class Commit:
    promoted: bool
    reason: str                     # why not, when not promoted
    deployed: dict[str, str] = field(default_factory=dict)   # role -> BentoML tag
    champion_before: str | None = None


def _bento_tags(targets: dict[str, str]) -> set[str]:
    """Every version the BentoML store holds of the deploy targets' models."""
    import bentoml
    tags: set[str] = set()
    for target in targets.values():
        try:
            tags |= {str(m.tag) for m in bentoml.models.list(target)}
        except bentoml.exceptions.NotFound:
            pass
    return tags


def _undeploy(targets: dict[str, str], before: set[str]) -> None:
    """Delete what a failed commit exported, so each target's `:latest` is what it was."""
    import bentoml
    for tag in sorted(_bento_tags(targets) - before):
        bentoml.models.delete(tag)


def commit(version: str, name: str, expected_champion: str | None, targets: dict[str, str],
           versions: dict[str, str], i2i: dict[str, Path] | None = None,
           record: Callable[[Commit], None] | None = None) -> Commit:
    """Promote `version` of `name` if `@champion` still names `expected_champion` (what it
    named when the run started: the run never compared itself with a champion promoted
    meanwhile, so it must not replace it). Under the lock: check, deploy (`deploy`:
    `targets`, `versions`, `i2i`), move the alias, `record` (the caller writing down that
    it promoted); any failure undoes all of it.

    A cancel that arrives from the check on is held back until the commit and its record
    are done (`lifecycle.uninterrupted`), so it lands before the commit (nothing promoted)
    or after it, never between deploy and alias.
    """
    from training.jobs import lifecycle
    with promotion_lock(name) as still_held:
        now = tracking.champion_version(name)
        if now != expected_champion:
            return Commit(False, f"not promoted: overtaken: another run moved `@{tracking.CHAMPION}` of `{name}` "
                                 f"from {_version(expected_champion)} to {_version(now)} while this run ran, "
                                 f"and this run was never compared with it; run it again", champion_before=now)
        with lifecycle.uninterrupted():
            if lifecycle.stop_pending():   # cancelled: acted on as soon as the block ends
                return Commit(False, "not promoted: the run was cancelled", champion_before=now)
            before, moved = (_bento_tags(targets) if targets else set()), False
            try:
                deployed = deploy(targets, versions, name, i2i=i2i) if targets else {}
                still_held()   # a lost lock may have let another run in: then the alias is not ours to move
                promote(version, name)
                moved = True
                done = Commit(True, "", deployed, champion_before=now)
                if record is not None:
                    record(done)
            except BaseException:   # all or nothing: the alias back where it was, then the models
                try:
                    if moved:
                        _reset_champion(name, now)
                finally:
                    if targets:
                        _undeploy(targets, before)
                raise
        return done


def bootstrap(version: str, name: str, targets: dict[str, str], i2i: Path | None = None,
              record: Callable[[Commit], None] | None = None) -> Commit:
    """Make `version` the first `@champion` of a registry that has none: the status quo an A/B
    tested against (the experiment's baseline; the loop's day 0 does the same with its course
    model), every target (champion and baseline alike) exported from it. A commit like any
    other: if a champion appeared meanwhile, it is kept and this says so."""
    return commit(version, name, None, targets, {role: version for role in targets},
                  i2i={role: i2i for role in targets} if i2i is not None else None, record=record)


def _reset_champion(name: str, version: str | None) -> None:
    from mlflow import MlflowClient
    client = MlflowClient()
    if version is None:
        client.delete_registered_model_alias(name, tracking.CHAMPION)
    else:
        client.set_registered_model_alias(name, tracking.CHAMPION, version)


def _version(v: str | None) -> str:
    return f"version {v}" if v else "no champion"
