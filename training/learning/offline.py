"""Offline evaluation of i2i lists on a held-out day's log, the way SessionAware uses them.

What the service serves is SessionAware over a model's i2i lists: each session is anchored
on the track the user chose first, and the next tracks come from that anchor's list
(artist by artist, never a track twice). So a list is judged by what the held-out day's
sessions say about *their anchor's* list, never by how well a model fits a time:

- per session, the later tracks (not replays) the user listened to long
  (time >= `relevant_time`) and where they sit in the anchor's list: `recall@k`,
  `ndcg@k` (gain = listened time);
- per session, the artists the user listened to long at their first play (the anchor's
  own artist excluded): are they among the list's artists (`artist_recall@k`);
- the logged listened time of the tracks / artists the list contains (`list_time@k`,
  `artist_time@k`: precision among what was observed; `coverage@k` says how much was);
- `snips`: a self-normalised IPS estimate of the mean listened time of SessionAware
  replayed over the candidate lists on each logged session prefix (the service's own
  class: the same answers it would give), from the logged propensities:
  sum(w r) / sum(w), w = pi(logged track | prefix) / logged propensity. SessionAware is
  deterministic (but for its TopPop fallback), so w is 1/propensity where its pick equals
  the logged recommendation and 0 elsewhere; the estimate needs exploration in the logs (`session_aware: explore`)
  to see beyond what the logging policy itself picks. `snips_ess` (Kish's effective
  sample size) says how many events it rests on.

Which figure tracks served reward is a measurement (`python -m training.learning.offline`
prints each figure's Spearman correlation with served reward when given the variants'
online figures); `SELECTION_FIGURE` is the one challenger selection uses, and the
training README records why.

    python -m training.learning.offline --log logs/day2 --world data/world \\
        --i2i course=data/i2i/control.jsonl --i2i seed=data/i2i/treatment.jsonl [--online online.json]
"""
from __future__ import annotations

import dataclasses

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from formats import lists as list_format
from training.data.catalog import Catalog, load_catalog
from training.data.events import EventLogError, read_events, sessionize
from training.learning.layout import catalog_lists

RELEVANT_TIME = 0.5
# chosen by measurement (training/README.md): the figure whose ranking of the lists a loop
# served agreed best with their served reward. Scene world, 7-day loop, contrastive learner,
# SessionAware taking new artists from the lists (14 served lists): Spearman 0.96 for
# artist_recall@50, 0.94 artist_time@50, 0.93 list_time@50, 0.84 snips, 0.76 recall@50, 0.50
# ndcg@50. (Genre world, 7 variants, SessionAware over the anchor's list alone: recall@50 0.79,
# artist_recall@50 0.75.)
SELECTION_FIGURE = "artist_recall@50"


@dataclass(frozen=True)
class HeldOut:
    """A held-out log cut into what the figures need, prepared once for any number of lists.

    Pairs are (session's anchor, a later track of the session) without replays;
    `events` are the logged recommendations with their reward and propensity, for SNIPS.
    """

    n_tracks: int
    artist: np.ndarray            # [N] the catalog's artist code per track
    pair_session: np.ndarray      # [P] session index of each pair
    pair_anchor: np.ndarray       # [P]
    pair_track: np.ndarray        # [P]
    pair_time: np.ndarray         # [P]
    pair_first_artist_play: np.ndarray  # [P] bool: first play of its artist in the session
    n_sessions: int
    sessions: list[tuple[list[int], list[float], list[int | None], list[float]]]
    # per session: tracks, times, logged recommendation per row, logged propensity per row

    @property
    def has_propensities(self) -> bool:
        return any(not math.isnan(p) for _, _, recs, props in self.sessions
                   for r, p in zip(recs, props) if r is not None)


def prepare(events: pd.DataFrame, catalog: Catalog) -> HeldOut:
    """The held-out figures' inputs from an event log (training.data.events.read_events output)."""
    if (events["track"] >= catalog.size).any():
        raise EventLogError(f"the held-out log names tracks beyond the catalog ({catalog.size} tracks): "
                            f"log and world differ")
    s = sessionize(events).sort_values(["session_id", "position"], kind="stable")
    sid = s["session_id"].to_numpy()
    pos = s["position"].to_numpy()
    track = s["track"].to_numpy().astype(np.int64)
    times = s["time"].to_numpy().astype(np.float64)
    starts = np.flatnonzero(pos == 0)
    anchor = track[starts][np.searchsorted(sid[starts], sid)]
    frame = pd.DataFrame({"sid": sid, "track": track, "artist": catalog.artist[track]})
    repeat = frame.groupby(["sid", "track"], sort=False).cumcount().to_numpy() > 0
    first_artist_play = frame.groupby(["sid", "artist"], sort=False).cumcount().to_numpy() == 0
    keep = (pos > 0) & ~repeat & (track != anchor)
    # dense session index over the sessions that have at least one pair
    used, session_index = np.unique(sid[keep], return_inverse=True)
    recs = s["recommendation"].to_numpy(dtype=object)
    props = (s["propensity"].to_numpy(dtype=np.float64) if "propensity" in s
             else np.full(len(s), np.nan))
    sessions = []
    bounds = np.append(starts, len(s))
    for a, b in zip(bounds[:-1], bounds[1:]):
        sessions.append((track[a:b].tolist(), times[a:b].tolist(),
                         [None if (r is None or r is pd.NA or (isinstance(r, float) and math.isnan(r))) else int(r)
                          for r in recs[a:b]],
                         props[a:b].tolist()))
    return HeldOut(n_tracks=catalog.size, artist=np.asarray(catalog.artist, dtype=np.int64),
                   pair_session=session_index.astype(np.int64), pair_anchor=anchor[keep],
                   pair_track=track[keep], pair_time=times[keep],
                   pair_first_artist_play=first_artist_play[keep], n_sessions=len(used),
                   sessions=sessions)


def load_heldout(log: str | Path | Iterable[str | Path], world: str | Path) -> HeldOut:
    """`prepare` of one or more logs (files or folders) against a world's public catalog."""
    logs = [log] if isinstance(log, (str, Path)) else list(log)
    events = pd.concat([read_events(p) for p in logs], ignore_index=True)
    events = events.sort_values("timestamp", kind="stable", ignore_index=True)
    return prepare(events, load_catalog(world))


def _session_mean(values: np.ndarray, session: np.ndarray, mask: np.ndarray, n: int) -> float:
    """Mean over sessions (that have any masked pair) of the mean of `values` over their masked pairs."""
    if not mask.any():
        return float("nan")
    num = np.bincount(session[mask], weights=values[mask], minlength=n)
    den = np.bincount(session[mask], minlength=n)
    ok = den > 0
    return float((num[ok] / den[ok]).mean())


def list_figures(lists: np.ndarray, held: HeldOut, k: int = 50,
                 relevant_time: float = RELEVANT_TIME) -> dict[str, float]:
    """recall@k, ndcg@k, artist_recall@k, list_time@k, artist_time@k, coverage@k of i2i `lists`.

    `lists` [N, >=k] int, best first, -1 padded (the service's table). Every figure is
    a mean over held-out sessions (each session counts once, however long), NaN when no
    session has what the figure needs.
    """
    lists = np.asarray(lists)
    if lists.ndim != 2 or lists.shape[0] != held.n_tracks:
        raise ValueError(f"lists must be [tracks={held.n_tracks}, k], got {lists.shape}")
    top = lists[:, :k]
    rows = top[held.pair_anchor]                                     # [P, k]
    hit = rows == held.pair_track[:, None]
    in_list = hit.any(1)
    rank = np.where(in_list, hit.argmax(1), -1)
    row_artists = np.where(rows >= 0, held.artist[np.maximum(rows, 0)], -1)
    artist_in = (row_artists == held.artist[held.pair_track][:, None]).any(1)
    s, n = held.pair_session, held.n_sessions
    rel = held.pair_time >= relevant_time
    out = {f"recall@{k}": _session_mean(in_list.astype(float), s, rel, n)}
    # ndcg: DCG of the logged times at their list ranks over the ideal DCG of those times
    gain = np.where(in_list, held.pair_time / np.log2(np.maximum(rank, 0) + 2.0), 0.0)
    dcg = np.bincount(s, weights=gain, minlength=n)
    order = np.lexsort((-held.pair_time, s))
    ss, tt = s[order], held.pair_time[order]
    first = np.searchsorted(ss, ss, side="left")
    r_ideal = np.arange(len(ss)) - first
    ideal_gain = np.where(r_ideal < k, tt / np.log2(r_ideal + 2.0), 0.0)
    idcg = np.bincount(ss, weights=ideal_gain, minlength=n)
    ok = idcg > 0
    out[f"ndcg@{k}"] = float((dcg[ok] / idcg[ok]).mean()) if ok.any() else float("nan")
    anchor_artist = held.artist[held.pair_anchor]
    new_artist = held.pair_first_artist_play & (held.artist[held.pair_track] != anchor_artist)
    out[f"artist_recall@{k}"] = _session_mean(artist_in.astype(float), s, new_artist & rel, n)
    out[f"list_time@{k}"] = _session_mean(held.pair_time, s, in_list, n)
    out[f"artist_time@{k}"] = _session_mean(held.pair_time, s, artist_in & new_artist, n)
    out[f"coverage@{k}"] = float(in_list.mean()) if len(in_list) else float("nan")
    return out


def snips(rewards: np.ndarray, target: np.ndarray, logged: np.ndarray) -> tuple[float, float]:
    """Self-normalised IPS: (sum(w r) / sum(w), Kish's effective sample size (sum w)^2 / sum w^2).

    `target` is the target policy's probability of each logged action, `logged` the logging
    policy's (its propensity). NaN estimate when no logged action has target probability > 0.
    """
    rewards, target, logged = (np.asarray(x, dtype=np.float64) for x in (rewards, target, logged))
    if not (len(rewards) == len(target) == len(logged)):
        raise ValueError("rewards, target and logged propensities must have one entry per event")
    if (logged <= 0).any() or (logged > 1).any() or np.isnan(logged).any():
        raise ValueError("logged propensities must be in (0, 1]")
    w = target / logged
    total = w.sum()
    if total <= 0:
        return float("nan"), 0.0
    return float((w * rewards).sum() / total), float(total ** 2 / (w ** 2).sum())


def replay_snips(lists: np.ndarray, held: HeldOut, catalog, options: Mapping | None = None) -> dict[str, float]:
    """SNIPS of SessionAware over `lists` on the held-out log's logged recommendations.

    `catalog` is the service's Catalog (service.catalog.load_catalog); `options` the
    session_aware options (strategy, discount, ...). Each logged recommendation with a
    known propensity is an event; its reward is the time the user then listened to it.
    SessionAware reads only the session (not the cross-session history), so replaying it
    on the logged prefix gives exactly the track it would have served there.
    """
    from service import recommenders as recs
    greedy = {f.name for f in dataclasses.fields(recs.SessionAware.Options)} - {"i2i"}
    # the target policy is SessionAware's greedy rule (an exploring kind's own options set its exploration)
    options = {k: v for k, v in dict(options or {}).items() if k in greedy}
    options["explore"] = 0.0
    table = np.asarray(lists, dtype=np.int32)
    rec = recs.SessionAware(catalog, recs.SessionAware.Options(i2i=table, **options))
    rewards, target, logged = [], [], []
    for tracks, times, served, props in held.sessions:
        for i in range(len(tracks) - 1):
            r, p = served[i], props[i]
            if r is None or math.isnan(p) or tracks[i + 1] != r:
                continue
            ctx = recs.Context(0, tuple(tracks[:i + 1]), tuple(times[:i + 1]), (), (0, i))
            rewards.append(times[i + 1])
            target.append(rec.probability(ctx, r))
            logged.append(p)
    if not rewards:
        return {"snips": float("nan"), "snips_ess": 0.0, "snips_events": 0.0}
    est, ess = snips(np.array(rewards), np.array(target), np.array(logged))
    return {"snips": est, "snips_ess": ess, "snips_events": float(len(rewards)),
            "snips_matches": float(np.count_nonzero(target))}


def evaluate(lists: np.ndarray, held: HeldOut, k: int = 50, service_catalog=None,
             session_aware: Mapping | None = None) -> dict[str, float]:
    """Every offline figure of one variant's lists (SNIPS when the log has propensities and
    `service_catalog` is given)."""
    out = list_figures(lists, held, k=k)
    if service_catalog is not None and held.has_propensities:
        out.update(replay_snips(lists, held, service_catalog, session_aware))
    return out


def read_lists(path: str | Path, n_tracks: int) -> np.ndarray:
    """An i2i file (either form of `formats.lists`) as the -1-padded table the service reads."""
    try:
        table = list_format.read_lists(path, "track", n_tracks, n_tracks)
    except list_format.FormatError as e:
        raise ValueError(f"i2i lists {path}: {e}") from None
    return np.asarray(table, dtype=np.int64)


def score_files(variants: Mapping[str, str | Path], log: str | Path | Iterable[str | Path],
                world: str | Path, k: int = 50, session_aware: Mapping | None = None) -> dict[str, dict[str, float]]:
    """Every offline figure of each named i2i file on a held-out log: what a loop calls to
    rank its challengers (`SELECTION_FIGURE` is the one to rank by)."""
    from service.catalog import load_catalog as service_catalog
    held = load_heldout(log, world)
    catalog = load_catalog(world)
    svc = service_catalog(catalog.path)
    return {name: evaluate(read_lists(path, catalog.size), held, k=k, service_catalog=svc,
                           session_aware=session_aware)
            for name, path in variants.items()}


def spearman(offline: Mapping[str, float], online: Mapping[str, float]) -> float:
    """Spearman rank correlation of the variants both mappings name (NaN offline values skipped)."""
    from scipy.stats import spearmanr
    names = [n for n in offline if n in online and not math.isnan(offline[n])]
    if len(names) < 3 or len({offline[n] for n in names}) < 2 or len({online[n] for n in names}) < 2:
        return float("nan")   # a constant side ranks nothing
    return float(spearmanr([offline[n] for n in names], [online[n] for n in names]).statistic)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log", action="append", required=True, help="held-out event log (file or folder); repeatable")
    ap.add_argument("--world", default="data/world", help="world folder (only public/ is read)")
    ap.add_argument("--i2i", action="append", default=[], metavar="NAME=PATH",
                    help="a variant's i2i lists; repeatable")
    ap.add_argument("--catalog-reference", action="store_true",
                    help="also score the metadata-only lists (anchor's artist, then its genre by popularity)")
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--online", default="", help="JSON {variant: served reward}: adds each figure's Spearman")
    ap.add_argument("--output", default="", help="write the table as JSON here")
    args = ap.parse_args(argv)
    try:
        catalog = load_catalog(args.world)
        events = pd.concat([read_events(p) for p in args.log], ignore_index=True)
        held = prepare(events.sort_values("timestamp", kind="stable", ignore_index=True), catalog)
        from service.catalog import load_catalog as service_catalog
        svc = service_catalog(catalog.path)
        variants = {}
        for item in args.i2i:
            name, sep, path = item.partition("=")
            if not sep:
                raise ValueError(f"--i2i {item!r}: expected NAME=PATH")
            variants[name] = read_lists(path, catalog.size)
        if args.catalog_reference:
            variants["catalog"] = catalog_lists(catalog, k=args.k)
        if not variants:
            raise ValueError("nothing to score: pass --i2i NAME=PATH or --catalog-reference")
        table = {name: evaluate(lists, held, k=args.k, service_catalog=svc) for name, lists in variants.items()}
    except (EventLogError, ValueError, FileNotFoundError) as e:
        print(f"offline: {e}", file=sys.stderr)
        return 2
    result: dict = {"figures": table}
    if args.online:
        online = json.loads(Path(args.online).read_text())
        figures = sorted({f for row in table.values() for f in row})
        result["spearman"] = {f: spearman({n: row.get(f, float("nan")) for n, row in table.items()}, online)
                              for f in figures}
    text = json.dumps(result, indent=1, sort_keys=True)
    if args.output:
        Path(args.output).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
