"""The stuck-worker check keeps judging the workers of a healthy Redis while another Redis is down (real command)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from ..harness import RedisServer, wait_for


@pytest.fixture
def second_redis(redis_server: RedisServer, tmp_path: Path):
    """This test's own second redis-server, stopped whatever happens."""
    server = RedisServer(redis_server.binary, tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_one_redis_down_does_not_blind_the_stuck_check_to_the_others(pool_factory, redis_client, second_redis):
    env = {"TEST_RQ_QUEUES_EXTRA": json.dumps({"other": {"URL": second_redis.url}})}
    pool = pool_factory("foo: 1\nother: 1\n", ("--stuck-timeout", "4"), env=env).start()
    pool.wait_log("all 2 workers are listening")
    foo_worker = wait_for(
        lambda: next((p for p in pool.worker_processes() if p.cmdline()[0].endswith("Listening on foo")), None),
        message="the foo worker",
    )
    second_redis.stop()
    os.kill(foo_worker.pid, signal.SIGSTOP)
    pool.wait_log(f"worker {foo_worker.pid} [foo] is stuck: no heartbeat in Redis for", timeout=40)
    pool.signal(signal.SIGTERM)
    assert pool.wait_exit(40) in (0, 5)  # 5: the worker of the dead Redis, retrying to connect, was SIGKILLed
