"""The service's Prometheus metrics: request count and latency per route template and status,
the memory store's size, and `/metrics`'s exposition of every worker's figures."""
from __future__ import annotations

import asyncio
import time

from service import seam


def exposition() -> tuple[bytes, str]:
    """(body, content type) of `/metrics`: every worker's multiprocess files, as BentoML's own
    route writes them (histogram samples in exposition order: buckets, count, sum)."""
    import prometheus_client
    from prometheus_client import multiprocess

    registry = prometheus_client.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    for metric in registry.collect():
        if metric.type == "histogram":
            metric.samples.sort(key=_histogram_order)
    return prometheus_client.generate_latest(registry), prometheus_client.CONTENT_TYPE_LATEST


def _histogram_order(sample) -> tuple:
    labels = tuple((k, v) for k, v in sorted(sample.labels.items()) if k != "le")
    for rank, suffix in enumerate(("_bucket", "_count", "_sum")):
        if sample.name.endswith(suffix):
            return labels, rank, float(sample.labels.get("le", 0)) if rank == 0 else 0.0
    return labels, 3, 0.0


class RouteMetrics:
    """Request count and latency per route *template* and status.

    BentoML's own metrics label by the raw path, a series per user of `/next/{user}`, whose
    multiprocess files grow without bound; they are off (service.py), this replaces them.
    Observations are kept in the worker and written to Prometheus's files at most once a
    second (and before this worker's `/metrics` answer, and at shutdown), because a histogram
    write takes a lock per value and is a visible share of a request.
    """

    BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
    FLUSH_SECONDS = 1.0

    def __init__(self, store: object = None) -> None:
        import prometheus_client  # after BentoML set PROMETHEUS_MULTIPROC_DIR in the worker

        self.duration = prometheus_client.Histogram(
            "botify_request_duration_seconds", "Time to answer a request, by route and status",
            labelnames=["route", "status"], buckets=self.BUCKETS)
        # the memory store's size and evictions (it is bounded: session_store.max_users)
        self._store = store if hasattr(store, "evictions") else None
        if self._store is not None:
            self.users = prometheus_client.Gauge("botify_memory_store_users", "Users held by the memory session store",
                                                 multiprocess_mode="livesum")
            self.evictions = prometheus_client.Counter(
                "botify_memory_store_evictions", "Users evicted from the memory session store (max_users reached)")
            self._evicted = 0
        self._bounds = self.BUCKETS + (float("inf"),)  # prometheus_client adds +Inf the same way
        self._pending: dict[tuple[str, int], list[float]] = {}  # (route, status) -> seconds observed
        self._scheduled = False

    def observe(self, route: str, status: int, started: float) -> None:
        seconds = time.perf_counter() - started
        pending = self._pending.get((route, status))
        if pending is None:
            pending = self._pending[(route, status)] = []
        pending.append(seconds)
        if not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_later(self.FLUSH_SECONDS, self.flush)
            except RuntimeError:  # no event loop (a direct call): write now
                self.flush()

    def flush(self) -> None:
        """Write what was observed since the last flush into the Prometheus histogram."""
        self._scheduled = False
        if self._store is not None:
            self.users.set(self._store.users)
            self.evictions.inc(self._store.evictions - self._evicted)
            self._evicted = self._store.evictions
        pending, self._pending = self._pending, {}
        for (route, status), seconds in pending.items():
            seam.observe_many(self.duration.labels(route=route, status=str(status)), seconds, self._bounds)
