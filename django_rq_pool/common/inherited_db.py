"""A forked process must never use, or close, a database socket it inherited."""

from __future__ import annotations

import os
from typing import Any

_INHERITED: list[Any] = []


def drop_inherited_db_connections() -> None:
    """Forget any DB socket inherited from the parent without saying goodbye on it.

    Closing it would send the server a goodbye on a socket the parent still uses; instead its fd
    is pointed at /dev/null and the connection object is kept forever, so it is never collected
    (and closed) either.
    """
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        raw = connection.connection
        if raw is None:
            continue
        fileno = getattr(raw, "fileno", None)
        if callable(fileno):
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, fileno())
            os.close(devnull)
        _INHERITED.append(raw)
        connection.connection = None
