"""``$RQ_POOL_WORKERS``: per-queue-list worker counts from the environment, over the config.

Format: ``list=count`` entries separated by ``;``, a list being comma-separated queue names in
priority order, e.g. ``RQ_POOL_WORKERS="foo=2;foo,bar,baz=4"``. A listed queue list gets that
count (its options stay as configured); a list the config does not name is added with the
command-line defaults (``--worker-class``, ``--with-scheduler``, ...), like any list that sets no
option. For an autoscaled list the count is the starting count and must lie within its
``min..max``. This lets a platform (Heroku config vars, a Kubernetes env) scale a list without a
redeploy or a new config file.
"""

from __future__ import annotations

import os
from dataclasses import replace

from django_rq_pool.config.loader import ConfigError, parse_queue_list
from django_rq_pool.config.plan import PoolPlan, QueueGroup

WORKERS_ENV_VAR = "RQ_POOL_WORKERS"
SOURCE = f"${WORKERS_ENV_VAR}"


def parse_counts(text: str) -> dict[tuple[str, ...], int]:
    """'foo=2;foo,bar=4' -> {('foo',): 2, ('foo', 'bar'): 4}; ConfigError names the bad entry."""
    counts: dict[tuple[str, ...], int] = {}
    for entry in text.split(";"):
        entry = entry.strip()
        if not entry:
            continue
        key, sep, value = entry.rpartition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ConfigError(SOURCE, 'each entry must be "queue,list=count", e.g. "foo=2;foo,bar,baz=4"', entry)
        queues = parse_queue_list(key, SOURCE, None)
        if not (value.isascii() and value.isdigit()):  # str.isdigit alone accepts "²"
            raise ConfigError(SOURCE, f"worker count must be a non-negative integer, got {value!r}", key)
        if queues in counts:
            raise ConfigError(SOURCE, "this queue list is given twice", key)
        counts[queues] = int(value)
    return counts


def apply_counts(plan: PoolPlan, counts: dict[tuple[str, ...], int]) -> PoolPlan:
    """The plan with the counts overridden (and unknown lists appended)."""
    if not counts:
        return plan
    groups = []
    seen = set()
    for group in plan.groups:
        if group.queues in counts:
            seen.add(group.queues)
            count, bounds = counts[group.queues], group.autoscale
            if bounds is not None and not bounds.min <= count <= bounds.max:
                raise ConfigError(
                    SOURCE,
                    f"count {count} is outside the list's min..max ({bounds.min}..{bounds.max} in {plan.source})",
                    group.name,
                )
            group = replace(group, count=count)
        groups.append(group)
    groups.extend(QueueGroup(queues, count) for queues, count in counts.items() if queues not in seen)
    return PoolPlan(tuple(groups), f"{plan.source} + {SOURCE}")


def counts_from_environment() -> dict[tuple[str, ...], int]:
    return parse_counts(os.environ.get(WORKERS_ENV_VAR, ""))
