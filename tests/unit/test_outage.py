"""The dequeue loop's opening heartbeat during an outage: it waits for Redis, and ends at once on a stop.

The worker talks to a real closed port (connections refused), as after a redis-server was killed.
"""

from __future__ import annotations

import threading
import time

import pytest
import redis
from rq import Queue
from rq.exceptions import StopRequested
from rq.worker import Worker

from django_rq_pool.worker.mixin import PoolWorkerMixin

from ..harness import free_port


@pytest.fixture
def worker() -> Worker:
    """A pool worker in its dequeue whose Redis is unreachable."""
    connection = redis.Redis(port=free_port(), socket_connect_timeout=1)
    worker_class = type("PoolWorker", (PoolWorkerMixin, Worker), {})
    worker = worker_class([Queue("foo", connection=connection)], connection=connection, name="outage-test")
    worker._pool_dequeueing = True
    return worker


def stop_later(worker: Worker, seconds: float) -> threading.Timer:
    """What the stop signal's handler does, from another thread after ``seconds``."""
    timer = threading.Timer(seconds, setattr, (worker, "_stop_requested", True))
    timer.start()
    return timer


def test_a_stop_ends_the_wait_for_redis_within_a_poll(worker, caplog):
    worker.max_connection_wait_time = worker.exponential_backoff_factor = 60  # the second wait would be 60 s
    stop_later(worker, 1.5)
    started = time.monotonic()
    with pytest.raises(StopRequested):
        worker.heartbeat()
    assert time.monotonic() - started < 1.5 + 1  # the stop came during the 60 s wait, not after it
    assert worker._pool_redis_unreachable
    assert "could not connect to Redis" in caplog.text
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
