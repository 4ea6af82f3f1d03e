"""The autoscaler's waits on quiet queues, against a real Redis: a job wakes the control child within
a round trip, the queue is left as it was, a worker blocked on the same queue still gets the job,
and a real pool waits on its quiet list instead of polling it."""

from __future__ import annotations

import select
import threading
import time

import redis

from django_rq_pool.control.autoscale.waker import WAIT_SECONDS, Waker
from django_rq_pool.control.child import CLIENT_NAME

from ..harness import done_records, wait_for


def woken_within(waker: Waker, seconds: float) -> bool:
    readable, _, _ = select.select(waker.sockets(), [], [], seconds)
    return waker.woken(readable)


def test_a_job_wakes_the_wait_and_stays_in_its_queue_in_order(redis_client: redis.Redis) -> None:
    waker = Waker()
    try:
        waker.keep({"foo": "foo"}, ["foo"], lambda queue: redis_client)
        assert waker.covers("foo")
        assert not woken_within(waker, 0.2)  # nothing waiting: the wait stays pending
        redis_client.rpush("rq:queue:foo", "job-1", "job-2", "job-3")
        assert woken_within(waker, 2.0)
        assert redis_client.lrange("rq:queue:foo", 0, -1) == [b"job-1", b"job-2", b"job-3"]
        assert not waker.covers("foo")  # answered: the next round reads the list and waits again
    finally:
        waker.close()


def test_a_worker_waiting_on_the_same_queue_still_gets_the_job(redis_client: redis.Redis) -> None:
    waker = Waker()
    got: list[object] = []
    worker_client = redis.Redis(connection_pool=redis_client.connection_pool)
    try:
        waker.keep({"foo": "foo"}, ["foo"], lambda queue: redis_client)
        assert not woken_within(waker, 0.1)  # the wait reached Redis before the worker's
        worker = threading.Thread(
            target=lambda: got.append(worker_client.blmove("rq:queue:foo", "rq:queue:foo:intermediate", 5))
        )
        worker.start()
        redis_client.rpush("rq:queue:foo", "job-1")
        assert woken_within(waker, 2.0)
        worker.join(10)
        assert got == [b"job-1"]
        assert redis_client.llen("rq:queue:foo") == 0
    finally:
        waker.close()


def test_a_wait_that_times_out_waits_again_and_a_list_no_longer_steered_loses_it(redis_client: redis.Redis) -> None:
    waker = Waker()
    try:
        waker.keep({"foo": "foo"}, ["foo", "bar"], lambda queue: redis_client)
        readable, _, _ = select.select(waker.sockets(), [], [], WAIT_SECONDS + 5.0)
        assert readable, "the wait did not time out"
        assert not waker.woken(readable)  # a timeout is no job: no round, the wait is renewed
        assert waker.covers("foo")
        redis_client.rpush("rq:queue:foo", "job-1")
        assert woken_within(waker, 2.0)  # the renewed wait sees the next job
        waker.keep({}, [], lambda queue: redis_client)
        assert not waker.covers("foo") and waker.sockets() == []
    finally:
        waker.close()


def llen_calls(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_llen", {}).get("calls", 0))


def test_a_pools_quiet_list_is_waited_on_not_polled_and_a_burst_still_scales_it(pool_factory, queue, redis_client):
    pool = pool_factory("foo: {min: 1, max: 3, scale_down_delay: 30}\n").start()
    pool.wait_workers(1)
    wait_for(
        lambda: any(c.get("name") == CLIENT_NAME and c.get("cmd") == "blmove" for c in redis_client.client_list()),
        15,
        "the control child's wait on rq:queue:foo",
    )
    before = llen_calls(redis_client)
    time.sleep(3.0)  # a span of idle time to count the reads in (no state is awaited)
    assert llen_calls(redis_client) - before <= 5, "a quiet waited-on list is read about once a second"
    for n in range(9):
        queue("foo").enqueue("testapp.jobs.sleep_then_record", f"burst-{n}", 0.5)
    wait_for(lambda: len(pool.worker_processes()) == 3, 10, "three workers for the burst")
    wait_for(lambda: len(done_records(redis_client)) == 9, 30, "every job done")
