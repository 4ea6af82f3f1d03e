"""Prometheus metrics from one read of the registry: every pool on every host in one scrape.

``prometheus_client`` is optional (``pip install django-rq-pool[metrics]``); without it the view
answers 501 with the install line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

try:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.exposition import choose_encoder
    from prometheus_client.registry import Collector, CollectorRegistry
except ImportError:  # the [metrics] extra is not installed
    CollectorRegistry = None  # type: ignore[assignment,misc]

AVAILABLE = CollectorRegistry is not None
MISSING = "prometheus_client is not installed: pip install 'django-rq-pool[metrics]'"

POOL = ["pool", "name", "host"]
LIST = [*POOL, "list"]
EXIT_REASONS = ("normal", "crash", "max_jobs", "memory", "stuck", "killed")

# name -> (kind, help, labels); the names README and docs/web.md list.
METRICS: dict[str, tuple[str, str, list[str]]] = {
    "rqpool_pool_info": ("gauge", "A live pool (always 1), with its state and version", [*POOL, "state", "version"]),
    "rqpool_pool_heartbeat_age_seconds": ("gauge", "Seconds since the pool's last heartbeat", POOL),
    "rqpool_workers_configured": ("gauge", "Workers the configuration asks for", LIST),
    "rqpool_workers_desired": ("gauge", "Workers wanted now (configuration or override)", LIST),
    "rqpool_workers_running": ("gauge", "Worker processes alive", LIST),
    "rqpool_workers_busy": ("gauge", "Workers running a job", LIST),
    "rqpool_workers_idle": ("gauge", "Workers waiting for a job", LIST),
    "rqpool_list_backoff_active": ("gauge", "1 while the list backs off after crashes", LIST),
    "rqpool_list_backlog_jobs": ("gauge", "Jobs queued on the list's queues", LIST),
    "rqpool_queue_backlog_jobs": ("gauge", "Jobs queued", ["queue"]),
    "rqpool_queue_oldest_job_age_seconds": ("gauge", "Age of the oldest queued job", ["queue"]),
    "rqpool_worker_uss_bytes": ("gauge", "Unique set size of a worker process", [*LIST, "worker"]),
    "rqpool_worker_exits": ("counter", "Worker exits by reason", [*POOL, "reason"]),
    "rqpool_commands": ("counter", "Control commands by result", [*POOL, "result"]),
}


def families(document: dict[str, Any], backlog: dict[str, dict[str, Any]]) -> list[Metric]:
    """The metric families of one registry document and the backlog of its queues."""
    made = {
        name: (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(name, text, labels=labels)
        for name, (kind, text, labels) in METRICS.items()
    }
    now = document.get("generated_at", 0.0)
    for pool in document.get("pools", []):
        ident = [str(pool.get("id")), str(pool.get("name")), str(pool.get("host"))]
        made["rqpool_pool_info"].add_metric([*ident, str(pool.get("state")), str(pool.get("version"))], 1)
        if pool.get("heartbeat_at") is not None:
            made["rqpool_pool_heartbeat_age_seconds"].add_metric(ident, max(0.0, now - pool["heartbeat_at"]))
        for row in pool.get("lists", []):
            labels = [*ident, str(row.get("key"))]
            for field in ("configured", "desired", "running", "busy", "idle"):
                made[f"rqpool_workers_{field}"].add_metric(labels, row.get(field) or 0)
            made["rqpool_list_backoff_active"].add_metric(labels, 1 if row.get("backoff") else 0)
            queued = sum(backlog.get(queue, {}).get("count") or 0 for queue in row.get("queues", []))
            made["rqpool_list_backlog_jobs"].add_metric(labels, queued)
        for worker in pool.get("workers", []):
            if worker.get("uss") is not None:
                labels = [*ident, str(worker.get("list")), str(worker.get("name"))]
                made["rqpool_worker_uss_bytes"].add_metric(labels, worker["uss"])
        exits = pool.get("exits", {})
        for reason in sorted({*EXIT_REASONS, *exits}):
            made["rqpool_worker_exits"].add_metric([*ident, reason], exits.get(reason, 0))
        for result in ("applied", "refused"):
            made["rqpool_commands"].add_metric([*ident, result], pool.get("commands", {}).get(result, 0))
    for queue, numbers in sorted(backlog.items()):
        made["rqpool_queue_backlog_jobs"].add_metric([queue], numbers.get("count") or 0)
        if numbers.get("oldest_age") is not None:
            made["rqpool_queue_oldest_job_age_seconds"].add_metric([queue], numbers["oldest_age"])
    return list(made.values())


def exposition(document: dict[str, Any], backlog: dict[str, dict[str, Any]], accept: str) -> tuple[bytes, str]:
    """The scrape's body and content type, in the format the scraper asked for."""

    class Snapshot(Collector):
        def collect(self) -> Iterator[Metric]:
            yield from families(document, backlog)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Snapshot())
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type
