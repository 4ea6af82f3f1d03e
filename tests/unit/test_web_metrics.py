"""Prometheus metrics from a registry document, read back with prometheus_client's own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from django_rq_pool.web.metrics import METRICS, exposition

from .test_web_page import document

POOL = {"pool": "web1:4242", "name": "web1", "host": "web1"}
LIST = {**POOL, "list": "foo,bar"}


def scrape() -> dict[tuple[str, tuple], float]:
    backlog = {"foo": {"count": 4, "oldest_age": 12.5}, "bar": {"count": 1, "oldest_age": None}}
    body, content_type = exposition(document(), backlog, accept="")
    assert content_type.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, metric: str, **labels: str) -> float:
    return samples[(metric, tuple(sorted(labels.items())))]


def test_gauges_per_pool_and_list() -> None:
    samples = scrape()
    assert value(samples, "rqpool_pool_info", **POOL, state="running", version="0.1.0") == 1
    assert value(samples, "rqpool_pool_heartbeat_age_seconds", **POOL) == 2
    expected = {"configured": 2, "desired": 3, "running": 3, "busy": 1, "idle": 2}
    for field, number in expected.items():
        assert value(samples, f"rqpool_workers_{field}", **LIST) == number, field
    assert value(samples, "rqpool_list_backoff_active", **LIST) == 1
    assert value(samples, "rqpool_list_backlog_jobs", **LIST) == 5
    assert value(samples, "rqpool_queue_backlog_jobs", queue="foo") == 4
    assert value(samples, "rqpool_queue_oldest_job_age_seconds", queue="foo") == 12.5
    assert ("rqpool_queue_oldest_job_age_seconds", (("queue", "bar"),)) not in samples
    assert value(samples, "rqpool_worker_uss_bytes", **LIST, worker="web1.4243.1") == 12 * 1024 * 1024


def test_counters_for_exits_and_commands() -> None:
    samples = scrape()
    for reason in ("normal", "crash", "max_jobs", "memory", "stuck", "killed"):
        assert value(samples, "rqpool_worker_exits_total", **POOL, reason=reason) == (1 if reason == "normal" else 0)
    assert value(samples, "rqpool_commands_total", **POOL, result="applied") == 2
    assert value(samples, "rqpool_commands_total", **POOL, result="refused") == 1


def test_every_name_has_the_prefix_and_is_documented() -> None:
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[2] / "docs" / "web.md").read_text()
    for name, (kind, _help, _labels) in METRICS.items():
        assert name.startswith("rqpool_")
        shown = f"{name}_total" if kind == "counter" else name
        assert f"`{shown}`" in docs, shown
