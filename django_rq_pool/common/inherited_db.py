"""A forked process must never use, or close, a database socket it inherited."""

from __future__ import annotations

import os
from typing import Any

_INHERITED: list[Any] = []


def holds_db_connections() -> bool:
    """Whether this process has a DB socket open that a child it forks would inherit.

    Asked in a worker before each job child's fork: the child then drops sockets only if there
    are any, instead of walking Django's connections itself, which un-shares (copies) about 50
    pages of the worker's memory per job for nothing when the worker has none (the usual case).
    """
    from django.db import connections

    return any(connection.connection is not None for connection in connections.all(initialized_only=True))


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
