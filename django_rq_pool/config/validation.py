"""Checks of a plan against the Django settings, done before anything forks."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string
from django_rq.connection_utils import filter_connection_params
from rq.job import Job
from rq.queue import Queue
from rq.worker import BaseWorker

from django_rq_pool.config.errors import ConfigError
from django_rq_pool.config.plan import DEFAULT_MAX_WORKERS, PoolPlan
from django_rq_pool.config.queue_lists import parse_memory
from django_rq_pool.config.redact import describe_connection

CLASS_KINDS: dict[str, type] = {"worker_class": BaseWorker, "job_class": Job, "queue_class": Queue}
# Named as imported above: the module rq defines them in moves between releases.
CLASS_NAMES = {"worker_class": "rq.worker.BaseWorker", "job_class": "rq.job.Job", "queue_class": "rq.queue.Queue"}


def resolve_class(path: str, option: str, source: str, key: str | None = None, line: int | None = None) -> type:
    """Import a dotted path and check it names the right kind of rq class."""
    expected = CLASS_KINDS[option]
    try:
        value = import_string(path)
    except ImportError as exc:
        raise ConfigError(source, f"{option} {path!r} cannot be imported: {exc}", key, line) from None
    if not isinstance(value, type) or not issubclass(value, expected):
        raise ConfigError(source, f"{option} {path!r} is not a subclass of {CLASS_NAMES[option]}", key, line)
    return value


def validate_plan(plan: PoolPlan) -> None:
    """Raise ConfigError unless every queue is configured and each list shares one Redis."""
    queues: dict[str, dict[str, Any]] = getattr(settings, "RQ_QUEUES", {}) or {}
    configured = ", ".join(sorted(queues)) or "(none: RQ_QUEUES is empty)"
    for group in plan.groups:
        for name in group.queues:
            if name not in queues:
                raise ConfigError(
                    plan.source,
                    f"queue {name!r} is not in settings.RQ_QUEUES; configured queues: {configured}",
                    group.name,
                    group.line,
                )
        first = filter_connection_params(queues[group.queues[0]])
        for name in group.queues[1:]:
            if filter_connection_params(queues[name]) != first:
                raise ConfigError(
                    plan.source,
                    f"queues {group.queues[0]!r} and {name!r} use different Redis connections "
                    f"({describe_connection(first)} vs {describe_connection(filter_connection_params(queues[name]))}); "
                    "a worker listens on one connection, so split them into separate lists",
                    group.name,
                    group.line,
                )
        for option in CLASS_KINDS:
            path = getattr(group.options, option)
            if path:
                resolve_class(path, option, plan.source, group.name, group.line)


def max_workers_setting() -> int:
    """``settings.RQ_POOL_MAX_WORKERS``: the most workers one queue list may have (default 64)."""
    value = getattr(settings, "RQ_POOL_MAX_WORKERS", DEFAULT_MAX_WORKERS)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            "settings.RQ_POOL_MAX_WORKERS",
            f"must be a positive integer (the most workers one queue list may have), got {value!r:.60}",
        )
    return value


def max_memory_option(given: str | None) -> int | None:
    """The pool's memory budget in bytes: ``--max-memory``, else ``settings.RQ_POOL_MAX_MEMORY``, else none."""
    if given is not None:
        return parse_memory(given, "--max-memory", None, None, option="the value")
    value = getattr(settings, "RQ_POOL_MAX_MEMORY", None)
    if value is None:
        return None
    return parse_memory(value, "settings.RQ_POOL_MAX_MEMORY", None, None, option="the value")
