"""Reading a YAML configuration file safely: bounded in size and aliases, every failure a ConfigError.

Mappings remember the line each key was written on, so that an error can name it.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import yaml

from django_rq_pool.config.errors import ConfigError, shown

MAX_FILE_BYTES = 1024 * 1024
MAX_ALIASES = 100


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
        raise ConfigError(name, f"YAML value cannot be read: {type(exc).__name__}: {shown(str(exc))}") from None
    finally:
        if loader is not None:
            loader.dispose()


def line_of(mapping: Any, key: Any) -> int | None:
    """The line ``key`` was written on in a mapping the YAML reader built (None for settings)."""
    return getattr(mapping, "lines", {}).get(key)
