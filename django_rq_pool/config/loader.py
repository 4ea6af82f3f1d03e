"""Reading the pool configuration: where it comes from, and turning it into a plan.

Everything here is pure (no Django, no Redis) so it can be checked quickly and fuzzed.
Checks that need the Django settings live in :mod:`django_rq_pool.config.validation`.

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
import re
import reprlib
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from django_rq_pool.config.bounds import BOUND_NAMES, LIST_MARKERS, BoundsError, parse_bounds
from django_rq_pool.config.plan import (
    DEFAULT_MAX_WORKERS,
    DEQUEUE_STRATEGIES,
    Autoscale,
    PoolPlan,
    QueueGroup,
    WorkerOptions,
)
from django_rq_pool.config.redact import redact_text

DEFAULT_PATHS = ("rq-pool.yml", "config/rq-pool.yml")
CONFIG_ENV_VAR = "RQ_POOL_CONFIG"
ENVIRONMENT_ENV_VARS = ("RQ_POOL_ENV", "DJANGO_ENV")
MAX_FILE_BYTES = 1024 * 1024
MAX_ALIASES = 100
OPTION_NAMES = ("count", *BOUND_NAMES, *vars(WorkerOptions()))
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:\-]+$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
MAX_MEMORY_LIMIT = 2**50  # a petabyte: anything larger is a typo


def _bounded_repr() -> reprlib.Repr:
    shown = reprlib.Repr()
    shown.maxlevel, shown.maxstring, shown.maxother, shown.maxlong = 3, 60, 60, 40
    return shown


_REPR = _bounded_repr()


def _shown(value: Any) -> str:
    """repr() bounded in size and depth: a hostile value (an alias bomb) must not blow up a message."""
    return _REPR.repr(value)


class ConfigError(Exception):
    """A configuration problem, phrased for the person who wrote the file."""

    def __init__(self, source: str, message: str, key: str | None = None, line: int | None = None):
        self.source = source
        self.key = key
        self.line = line
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        key = f" key {_shown(self.key)}:" if self.key is not None else ""
        return redact_text(f"{where}:{key} {self.message}")


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


class _LocatedDict(dict):
    """A mapping that remembers the line each key was written on."""

    lines: dict[Any, int]


class _Loader(yaml.SafeLoader):
    """Safe loader that records key lines and refuses alias bombs."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_ALIASES} aliases")
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):  # type: ignore[no-untyped-def]
        mapping = _LocatedDict(super().construct_mapping(node, deep=deep))
        mapping.lines = {}
        for key_node, _ in node.value:
            try:
                key = self.construct_object(key_node, deep=True)
                mapping.lines[key] = key_node.start_mark.line + 1
            except (TypeError, yaml.YAMLError):
                continue
        return mapping


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_mapping)


def read_file(path: Path) -> Any:
    """Read and parse a YAML file, turning every failure into a ConfigError."""
    name = str(path)
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise ConfigError(name, "is a directory; expected a YAML file")
        if not stat.S_ISREG(mode):
            raise ConfigError(name, "is not a regular file (a FIFO or device would block or never end)")
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(name, "file not found") from None
    except OSError as exc:
        raise ConfigError(name, f"cannot be read: {exc.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(name, f"is larger than {MAX_FILE_BYTES} bytes; a pool config is a few lines")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(name, f"is not UTF-8 text (bad byte at offset {exc.start})") from None
    return parse_yaml(text, name)


def parse_yaml(text: str, name: str) -> Any:
    """Parse YAML text with the safe loader; syntax errors carry line and column."""
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # the reader already rejects control characters here
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = f", column {mark.column + 1}" if mark else ""
        raise ConfigError(name, f"YAML syntax error{column}: {exc.problem or exc.context}", line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(name, f"YAML error: {exc}") from None
    except RecursionError:
        raise ConfigError(name, "is nested too deeply to be a pool config") from None
    except Exception as exc:
        # SafeLoader's constructors raise ValueError for a date such as 2001-02-30 and
        # AttributeError for "!!timestamp ''": hostile text must still end as a ConfigError.
        raise ConfigError(name, f"YAML value cannot be read: {type(exc).__name__}: {_shown(str(exc))}") from None
    finally:
        if loader is not None:
            loader.dispose()


def _line(mapping: Any, key: Any) -> int | None:
    return getattr(mapping, "lines", {}).get(key)


def parse_queue_list(key: Any, source: str, line: int | None) -> tuple[str, ...]:
    """'foo, bar,baz' -> ('foo', 'bar', 'baz'), rejecting empty or repeated names."""
    if not isinstance(key, str):
        raise ConfigError(source, "a queue list must be a string of comma-separated queue names", _shown(key), line)
    names = tuple(part.strip() for part in key.split(","))
    for name in names:
        if not name:
            raise ConfigError(source, 'empty queue name in the list; write e.g. "foo,bar"', key, line)
        if not _QUEUE_NAME.match(name):
            raise ConfigError(source, f"{_shown(name)} is not a valid queue name (letters, digits, _ . : -)", key, line)
    if len(set(names)) != len(names):
        raise ConfigError(source, "a queue is named twice in the list", key, line)
    return names


def _count(value: Any, source: str, key: str, line: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(source, f"worker count must be a non-negative integer, got {_shown(value)}", key, line)
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
            source, f"{option} must be a size such as 512MB or 1GiB (at most 1 PiB), got {_shown(value)}", key, line
        )
    return int(size)


def _options(block: Any, source: str, key: str, cap: int) -> tuple[int, WorkerOptions, Autoscale | None]:
    values: dict[str, Any] = {}
    count = None
    for name, value in block.items():
        line = _line(block, name)
        if name not in OPTION_NAMES:
            raise ConfigError(
                source, f"unknown option {_shown(name)}; known options: {', '.join(OPTION_NAMES)}", key, line
            )
        if name == "count":
            count = _count(value, source, key, line)
        elif name in ("worker_class", "job_class", "queue_class"):
            if not isinstance(value, str) or "." not in value:
                raise ConfigError(source, f"{name} must be a dotted path such as rq.worker.SimpleWorker", key, line)
            values[name] = value
        elif name in ("max_jobs", "max_idle_time"):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(source, f"{name} must be a positive integer or null, got {_shown(value)}", key, line)
            values[name] = value
        elif name == "dequeue_strategy":
            if value not in DEQUEUE_STRATEGIES:
                raise ConfigError(source, f"dequeue_strategy must be one of {', '.join(DEQUEUE_STRATEGIES)}", key, line)
            values[name] = value
        elif name == "with_scheduler":
            if not isinstance(value, bool):
                raise ConfigError(source, f"with_scheduler must be true or false, got {_shown(value)}", key, line)
            values[name] = value
        elif name == "memory_limit":
            values[name] = None if value is None else parse_memory(value, source, key, line)
    try:
        count, autoscale = parse_bounds(block, count, cap)
    except BoundsError as exc:
        raise ConfigError(source, str(exc), key, _line(block, exc.option)) from None
    return count, WorkerOptions(**values), autoscale


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
            line = _line(mapping, key)
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
                source, "a queue list needs a count or a mapping with 'count', 'min' or 'max'", key, _line(data, key)
            )
    if environment is not None and _is_environment(data.get(environment)):
        add_entries(data[environment], environment)

    groups = []
    for queues, (key, value, line) in merged.items():
        explicit: frozenset[str] = frozenset()
        autoscale = None
        if isinstance(value, dict):
            count, options, autoscale = _options(value, source, key, cap)
            explicit = frozenset(value) - {"count", *BOUND_NAMES}
        else:
            count, options = _count(value, source, key, line), WorkerOptions()
        groups.append(QueueGroup(queues, count, options, line, explicit, autoscale))
    return PoolPlan(tuple(groups), source)


def load_plan(source: Source, settings_value: Any, environment: str | None, cap: int = DEFAULT_MAX_WORKERS) -> PoolPlan:
    """Load the plan from its source; raises ConfigError for anything wrong."""
    if source.kind == "settings":
        return parse_config(settings_value, source.name, environment, cap)
    assert source.path is not None
    return parse_config(read_file(source.path), source.name, environment, cap)
