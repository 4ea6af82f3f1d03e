"""Reading the pool configuration: where it comes from, and turning it into a plan.

Everything here is pure (no Django, no Redis) so it can be checked quickly and fuzzed.
Checks that need the Django settings live in :mod:`django_rq_pool.config.validation`. Its parts:
``errors`` (:class:`ConfigError`), ``yaml_file`` (reading a file safely), ``queue_lists`` (one
list's queue names, count and options).

Format (YAML or ``settings.RQ_POOL``)::

    foo: 1                      # queue list -> worker count
    "foo,bar,baz": 4            # a list is a priority order
    "reports":                  # queue list -> options (a mapping with ``count``, ``min`` or ``max``)
      count: 2
      max_jobs: 500
    "mail": {min: 1, max: 16}   # autoscaled within [min, max] (bounds.py)
    production:                 # environment section: a mapping with none of them
      foo: 3
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django_rq_pool.config.bounds import BOUND_NAMES, LIST_MARKERS
from django_rq_pool.config.errors import ConfigError
from django_rq_pool.config.plan import DEFAULT_MAX_WORKERS, PoolPlan, QueueGroup, WorkerOptions
from django_rq_pool.config.queue_lists import OPTION_NAMES, parse_count, parse_list_options, parse_queue_list
from django_rq_pool.config.yaml_file import line_of, read_file

DEFAULT_PATHS = ("rq-pool.yml", "config/rq-pool.yml")
CONFIG_ENV_VAR = "RQ_POOL_CONFIG"
ENVIRONMENT_ENV_VARS = ("RQ_POOL_ENV", "DJANGO_ENV")


@dataclass(frozen=True)
class Source:
    """Where the configuration comes from; only file sources can be reloaded."""

    kind: str  # "file" or "settings"
    path: Path | None = None

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else "settings.RQ_POOL"

    @property
    def reloadable(self) -> bool:
        return self.kind == "file"


def find_source(explicit: str | None, has_settings: bool, cwd: Path) -> Source:
    """Pick the source by the documented order: --config/RQ_POOL_CONFIG, settings, files."""
    explicit = explicit or os.environ.get(CONFIG_ENV_VAR) or None
    if explicit:
        return Source("file", Path(explicit))
    if has_settings:
        return Source("settings")
    for candidate in DEFAULT_PATHS:
        path = cwd / candidate
        if path.exists():
            return Source("file", path)
    looked = ", ".join(["--config", f"${CONFIG_ENV_VAR}", "settings.RQ_POOL"] + [str(cwd / p) for p in DEFAULT_PATHS])
    raise ConfigError(
        "rq-pool.yml",
        f"no configuration found; looked at {looked}. Create rq-pool.yml (for example `default: 2`: "
        "two workers on the default queue) or set settings.RQ_POOL",
    )


def choose_environment(explicit: str | None) -> str | None:
    """--environment wins, then RQ_POOL_ENV, then DJANGO_ENV."""
    if explicit:
        return explicit
    for name in ENVIRONMENT_ENV_VARS:
        if os.environ.get(name):
            return os.environ[name]
    return None


def _is_environment(value: Any) -> bool:
    return isinstance(value, dict) and not any(marker in value for marker in LIST_MARKERS)


def _looks_like_options(value: dict) -> bool:
    """A mapping of nothing but option names is a list's options that forgot count/min/max."""
    return bool(value) and all(isinstance(name, str) and name in OPTION_NAMES for name in value)


def parse_config(data: Any, source: str, environment: str | None = None, cap: int = DEFAULT_MAX_WORKERS) -> PoolPlan:
    """Turn a loaded mapping into a plan, merging the chosen environment section over the top.

    ``cap`` is the most workers one list may have (``settings.RQ_POOL_MAX_WORKERS``): a ``max`` above it is refused.
    """
    if not isinstance(data, dict):
        kind = "empty" if data is None else type(data).__name__
        raise ConfigError(source, f"the top level must be a mapping of queue lists to counts, got {kind}")
    merged: dict[tuple[str, ...], tuple[str, Any, int | None]] = {}

    def add_entries(mapping: dict, section: str | None) -> None:
        for key, value in mapping.items():
            line = line_of(mapping, key)
            if _is_environment(value):
                if section is not None:
                    raise ConfigError(
                        source,
                        f"inside environment {section!r} a mapping needs a 'count', 'min' or 'max' "
                        "(environments do not nest)",
                        key,
                        line,
                    )
                if _looks_like_options(value):
                    raise ConfigError(
                        source,
                        "these look like a queue list's options but there is no 'count', 'min' or 'max' "
                        "(a mapping without them is an environment section)",
                        key,
                        line,
                    )
                continue
            queues = parse_queue_list(key, source, line)
            merged[queues] = (key, value, line)

    add_entries(data, None)
    for key, value in data.items():
        if _is_environment(value) and "," in str(key):
            raise ConfigError(
                source, "a queue list needs a count or a mapping with 'count', 'min' or 'max'", key, line_of(data, key)
            )
    if environment is not None and _is_environment(data.get(environment)):
        add_entries(data[environment], environment)

    groups = []
    for queues, (key, value, line) in merged.items():
        explicit: frozenset[str] = frozenset()
        autoscale = None
        if isinstance(value, dict):
            count, options, autoscale = parse_list_options(value, source, key, cap)
            explicit = frozenset(value) - {"count", *BOUND_NAMES}
        else:
            count, options = parse_count(value, source, key, line), WorkerOptions()
        groups.append(QueueGroup(queues, count, options, line, explicit, autoscale))
    return PoolPlan(tuple(groups), source)


def load_plan(source: Source, settings_value: Any, environment: str | None, cap: int = DEFAULT_MAX_WORKERS) -> PoolPlan:
    """Load the plan from its source; raises ConfigError for anything wrong."""
    if source.kind == "settings":
        return parse_config(settings_value, source.name, environment, cap)
    assert source.path is not None
    return parse_config(read_file(source.path), source.name, environment, cap)
