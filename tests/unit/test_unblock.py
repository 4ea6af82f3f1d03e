"""The stop's helper thread when it cannot end a blocking dequeue: quiet in an outage, reported otherwise.

Redis unreachable (a real closed port) is the outage path's to handle: the worker is not left blocked,
so "cannot interrupt" would be false. Redis up but refusing ``CLIENT LIST`` (an ACL) is reported.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable

import pytest
import redis
from rq import Queue
from rq.worker import Worker

from django_rq_pool.worker.unblock import _unblock_when_blocked

from ..harness import RedisServer, free_port, wait_for


def worker_on(connection: redis.Redis, redis_client: redis.Redis) -> Worker:
    worker = Worker([Queue("foo", connection=redis_client)], connection=redis_client, name="unblock-test")
    worker.connection = connection
    return worker


def run_helper(worker: Worker, patience: float, dequeueing: Callable[[], bool]) -> threading.Thread:
    """As ``interrupt_blocking_dequeue`` starts it: in a thread of its own (it blocks that thread's signals)."""
    thread = threading.Thread(target=_unblock_when_blocked, args=(worker, patience, dequeueing), daemon=True)
    thread.start()
    return thread


@pytest.fixture
def unreachable() -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)


def test_an_outage_that_ends_the_dequeue_logs_nothing(redis_client, unreachable, caplog):
    """The worker leaves its dequeue (the outage path saw the stop): the helper ends without a word."""
    caplog.set_level(logging.DEBUG, logger="django_rq_pool")
    asked: list[float] = []

    def dequeueing() -> bool:
        asked.append(time.monotonic())
        return len(asked) < 3  # it asks before each try: two tries refused, then the dequeue is over

    thread = run_helper(worker_on(unreachable, redis_client), 30, dequeueing)
    thread.join(30)
    assert not thread.is_alive()
    assert [r.getMessage() for r in caplog.records if r.name.startswith("django_rq_pool")] == []


def test_an_outage_longer_than_its_patience_says_what_is_true(redis_client, unreachable, caplog):
    caplog.set_level(logging.INFO, logger="django_rq_pool")
    thread = run_helper(worker_on(unreachable, redis_client), 1, lambda: True)
    thread.join(20)
    assert not thread.is_alive()
    (record,) = [r for r in caplog.records if r.name.startswith("django_rq_pool")]
    assert record.levelno == logging.INFO
    assert re.search(rf"\(pid {os.getpid()}, queues foo\): Redis unreachable for \d+ s \(", record.getMessage())
    assert "cannot interrupt" not in caplog.text


def test_redis_up_but_refusing_client_list_is_reported(redis_server: RedisServer, redis_client, caplog):
    user = "no-client-list"
    redis_client.execute_command("ACL", "SETUSER", user, "reset", "on", ">pw", "~*", "&*", "+@all", "-client")
    try:
        refused = redis.Redis(host="127.0.0.1", port=redis_server.port, username=user, password="pw")
        thread = run_helper(worker_on(refused, redis_client), 30, lambda: True)
        thread.join(10)
        assert not thread.is_alive()
        wait_for(lambda: "cannot interrupt its blocking dequeue" in caplog.text, 5, "the warning")
        (record,) = [r for r in caplog.records if "cannot interrupt" in r.getMessage()]
        assert record.levelno == logging.WARNING
        assert f"(pid {os.getpid()}, queues foo): cannot interrupt its blocking dequeue (" in record.getMessage()
    finally:
        redis_client.execute_command("ACL", "DELUSER", user)
