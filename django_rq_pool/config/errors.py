"""The configuration's one error type, and the bounded repr its messages quote values with."""

from __future__ import annotations

import reprlib
from typing import Any

from django_rq_pool.config.redact import redact_text


def _bounded_repr() -> reprlib.Repr:
    bounded = reprlib.Repr()
    bounded.maxlevel, bounded.maxstring, bounded.maxother, bounded.maxlong = 3, 60, 60, 40
    return bounded


_REPR = _bounded_repr()


def shown(value: Any) -> str:
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
        key = f" key {shown(self.key)}:" if self.key is not None else ""
        return redact_text(f"{where}:{key} {self.message}")
