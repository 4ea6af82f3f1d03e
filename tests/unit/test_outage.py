"""The dequeue loop's opening heartbeat during an outage: it waits for Redis, and ends at once on a stop.

The worker talks to a real closed port (connections refused), as after a redis-server was killed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest
import redis
from rq import Queue
from rq.exceptions import StopRequested
from rq.worker import Worker

from django_rq_pool.worker.dequeue import HeldClaim
from django_rq_pool.worker.mixin import PoolWorkerMixin

from ..harness import free_port, wait_for


@pytest.fixture
def worker(redis_client: redis.Redis) -> Worker:
    """A pool worker in its dequeue whose Redis has become unreachable (built while it answered)."""
    worker_class = type("PoolWorker", (PoolWorkerMixin, Worker), {})
    worker = worker_class([Queue("foo", connection=redis_client)], connection=redis_client, name="outage-test")
    worker.connection = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    worker._pool_dequeueing = True
    return worker


def stop_when(worker: Worker, ready: Callable[[], bool], stopped_at: list[float]) -> threading.Thread:
    """What the stop signal's handler does, from another thread once ``ready()``."""

    def stop() -> None:
        wait_for(ready, 30, "the worker to wait for Redis")
        stopped_at.append(time.monotonic())
        worker._stop_requested = True

    thread = threading.Thread(target=stop, daemon=True)
    thread.start()
    return thread


def retry_logs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if "could not connect to Redis" in record.getMessage()]


def test_a_stop_ends_the_wait_for_redis_within_a_poll(worker, caplog):
    """The worker's connection retries for seconds (redis-py's policy); the waits' probes do not."""
    worker.max_connection_wait_time = worker.exponential_backoff_factor = 60  # the second wait is 60 s
    stopped_at: list[float] = []
    stop_when(worker, lambda: len(retry_logs(caplog)) == 2, stopped_at)
    with pytest.raises(StopRequested):
        worker.heartbeat()
    assert time.monotonic() - stopped_at[0] < 1  # during the 60 s wait, not after it
    first, second = retry_logs(caplog)
    assert "retrying in 1 s" in first.getMessage() and "retrying in 60 s" in second.getMessage()
    assert second.created - first.created < 2  # the 1 s wait, then a probe refused at once
    assert worker._pool_redis_unreachable
    assert "queues foo): stopping while Redis is unreachable" in caplog.text
    worker.teardown()  # registers no death: Redis is unreachable


def test_a_pass_that_begins_after_a_stop_ends_at_once(worker, caplog):
    worker._stop_requested = True
    started = time.monotonic()
    with pytest.raises(StopRequested):
        worker.heartbeat()
    assert time.monotonic() - started < 1
    assert worker._pool_redis_unreachable
    assert "could not connect to Redis" not in caplog.text  # no wait was begun


@pytest.mark.parametrize("where", ["holding a job", "outside the dequeue", "with a pipeline"])
def test_other_heartbeats_keep_rqs_rules(worker, where):
    """Only the heartbeat that opens a pass waits; the others raise as in rq."""
    if where == "holding a job":
        worker.reorder_queues(worker.queues[0])
    elif where == "outside the dequeue":
        worker._pool_dequeueing = False
    worker._stop_requested = True
    with pytest.raises(redis.ConnectionError):
        if where == "with a pipeline":
            with worker.connection.pipeline() as pipeline:
                worker.heartbeat(pipeline=pipeline)
                pipeline.execute()
        else:
            worker.heartbeat()


def test_a_claim_held_when_stopping_is_named_for_the_janitor(worker, caplog):
    """entry.run_worker then exits WORKER_LEFT_A_JOB, so the janitor puts the job back."""
    worker._stop_requested = True
    HeldClaim.claim = ("rq:queue:foo", "held-job", True)
    try:
        with pytest.raises(StopRequested):
            worker.heartbeat()
    finally:
        HeldClaim.release()
    assert "job held-job stays in its intermediate list for the janitor" in caplog.text
