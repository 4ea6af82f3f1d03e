"""One queue list of the configuration: its key (the queue names) and its count and options."""

from __future__ import annotations

import re
from typing import Any

from django_rq_pool.config.bounds import BOUND_NAMES, BoundsError, parse_bounds
from django_rq_pool.config.errors import ConfigError, shown
from django_rq_pool.config.plan import DEQUEUE_STRATEGIES, Autoscale, WorkerOptions
from django_rq_pool.config.yaml_file import line_of

OPTION_NAMES = ("count", *BOUND_NAMES, *vars(WorkerOptions()))
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:\-]+$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
MAX_MEMORY_LIMIT = 2**50  # a petabyte: anything larger is a typo


def parse_queue_list(key: Any, source: str, line: int | None) -> tuple[str, ...]:
    """'foo, bar,baz' -> ('foo', 'bar', 'baz'), rejecting empty or repeated names."""
    if not isinstance(key, str):
        raise ConfigError(source, "a queue list must be a string of comma-separated queue names", shown(key), line)
    names = tuple(part.strip() for part in key.split(","))
    for name in names:
        if not name:
            raise ConfigError(source, 'empty queue name in the list; write e.g. "foo,bar"', key, line)
        if not _QUEUE_NAME.match(name):
            raise ConfigError(source, f"{shown(name)} is not a valid queue name (letters, digits, _ . : -)", key, line)
    if len(set(names)) != len(names):
        raise ConfigError(source, "a queue is named twice in the list", key, line)
    return names


def parse_count(value: Any, source: str, key: str, line: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(source, f"worker count must be a non-negative integer, got {shown(value)}", key, line)
    return value


def parse_memory(value: Any, source: str, key: str | None, line: int | None, option: str = "memory_limit") -> int:
    """Accept 512 (MiB), '512MB', '1.5GiB', '800k'; return bytes."""
    size = 0.0
    if isinstance(value, int) and not isinstance(value, bool):
        size = float(value) * 1024**2 if value < MAX_MEMORY_LIMIT else float(MAX_MEMORY_LIMIT + 1)
    elif isinstance(value, str) and (match := _SIZE.match(value)):
        scale = {"": 1024**2, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}[match.group(2).lower()]
        size = float(match.group(1)) * scale
    if not 0 < size <= MAX_MEMORY_LIMIT:
        raise ConfigError(
            source, f"{option} must be a size such as 512MB or 1GiB (at most 1 PiB), got {shown(value)}", key, line
        )
    return int(size)


def parse_list_options(block: Any, source: str, key: str, cap: int) -> tuple[int, WorkerOptions, Autoscale | None]:
    values: dict[str, Any] = {}
    count = None
    for name, value in block.items():
        line = line_of(block, name)
        if name not in OPTION_NAMES:
            raise ConfigError(
                source, f"unknown option {shown(name)}; known options: {', '.join(OPTION_NAMES)}", key, line
            )
        if name == "count":
            count = parse_count(value, source, key, line)
        elif name in ("worker_class", "job_class", "queue_class"):
            if not isinstance(value, str) or "." not in value:
                raise ConfigError(source, f"{name} must be a dotted path such as rq.worker.SimpleWorker", key, line)
            values[name] = value
        elif name in ("max_jobs", "max_idle_time"):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(source, f"{name} must be a positive integer or null, got {shown(value)}", key, line)
            values[name] = value
        elif name == "dequeue_strategy":
            if value not in DEQUEUE_STRATEGIES:
                raise ConfigError(source, f"dequeue_strategy must be one of {', '.join(DEQUEUE_STRATEGIES)}", key, line)
            values[name] = value
        elif name in ("with_scheduler", "prefork_job_child"):
            if not isinstance(value, bool):
                raise ConfigError(source, f"{name} must be true or false, got {shown(value)}", key, line)
            values[name] = value
        elif name == "memory_limit":
            values[name] = None if value is None else parse_memory(value, source, key, line)
    try:
        count, autoscale = parse_bounds(block, count, cap)
    except BoundsError as exc:
        raise ConfigError(source, str(exc), key, line_of(block, exc.option)) from None
    return count, WorkerOptions(**values), autoscale
