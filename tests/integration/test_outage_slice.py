"""Redis dies exactly where rq writes to it outside its retry loop: the worker waits the outage out, or stops.

An idle worker's dequeue ends every 5 s (a slice) and rq then sends a heartbeat; after a pause or a
CONT it writes the worker's state (SUSPENDED, IDLE) before dequeueing. rq makes these writes outside
its retry loop, so an error there would quit the loop (a traceback, exit 4). The test app kills the
redis-server right at those points (``TEST_REDIS_KILL``, testapp/faults.py): the worker's next command
meets the outage. It must wait it out and serve the queues once Redis is back, with the same process
and no job lost, or, told to stop meanwhile, exit at once with the documented status.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest
from rq import Queue

from ..harness import Pool, RedisServer, wait_for
from .lifecycle import gone

LISTS = {"single-queue": "foo: 1\n", "multi-queue": '"foo,bar": 1\n'}  # BLMOVE; the doorbell wait


def start_pool(server: RedisServer, tmp_path: Path, lists: str, point: str) -> tuple[Pool, int]:
    """A pool of one worker whose first arrival at ``point`` kills ``server``."""
    assert server.process is not None
    env = {"TEST_REDIS_KILL": f"{point}:{server.process.pid}:{tmp_path}"}
    pool = Pool(server, tmp_path, lists, env=env).start()
    pool.wait_workers(1)
    (worker,) = pool.worker_processes()
    return pool, worker.pid


def killed_there(server: RedisServer, tmp_path: Path, pool: Pool, point: str, worker: int) -> None:
    marker = tmp_path / point
    wait_for(marker.exists, 20, f"the worker to reach {point!r}, and Redis to be killed there")
    assert wait_for(lambda: marker.read_text().split(), 5, "the marker's content")[0] == str(worker)
    server.stop()  # reaps the killed redis-server
    pool.wait_log("could not connect to Redis: ", 30)  # the worker waits the outage out
    assert not gone(worker)


def state(pool: Pool) -> list[str]:
    return [fields.get("state", "") for fields in pool.registered_workers().values()]


def assert_serves_jobs_then_stops(server: RedisServer, pool: Pool, worker: int, lists: str) -> None:
    client = server.client()
    names = ("foo", "bar") if "bar" in lists else ("foo", "foo")
    jobs = [Queue(name, connection=client).enqueue("testapp.jobs.record", name) for name in names]
    wait_for(lambda: all(job.get_status(refresh=True) == "finished" for job in jobs), 60, "the jobs to finish")
    assert [p.pid for p in pool.worker_processes()] == [worker]  # the same worker: it never exited
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit(30) == 0, pool.log()[-3000:]
    assert_quiet(pool)


def assert_quiet(pool: Pool) -> None:
    log = pool.log()
    for noise in ("Traceback", "unhandled exception", "exited with status 4", "cannot interrupt"):
        assert noise not in log, log[-3000:]


@pytest.mark.parametrize("lists", LISTS.values(), ids=LISTS.keys())
def test_redis_dying_as_a_slice_ends_is_waited_out(durable_redis, tmp_path, lists):
    pool, worker = start_pool(durable_redis, tmp_path, lists, "slice-end")
    try:
        killed_there(durable_redis, tmp_path, pool, "slice-end", worker)
        durable_redis.start()
        assert_serves_jobs_then_stops(durable_redis, pool, worker, lists)
    finally:
        pool.cleanup()


@pytest.mark.parametrize("lists", LISTS.values(), ids=LISTS.keys())
def test_a_stop_during_that_outage_exits_at_once(durable_redis, tmp_path, lists):
    pool, worker = start_pool(durable_redis, tmp_path, lists, "slice-end")
    try:
        killed_there(durable_redis, tmp_path, pool, "slice-end", worker)
        pool.signal(signal.SIGQUIT)
        assert pool.wait_exit(10) == 0, pool.log()[-3000:]
        assert re.search(rf"\(pid {worker}, queues [a-z,]+\): stopping while Redis is unreachable", pool.log())
        assert_quiet(pool)
    finally:
        pool.cleanup()


@pytest.mark.parametrize("point", ["pause", "resume"])
def test_redis_dying_as_a_pause_begins_or_ends_is_waited_out(durable_redis, tmp_path, point):
    """USR2: the worker reports SUSPENDED; CONT: IDLE again. Redis dies just before that write."""
    pool, worker = start_pool(durable_redis, tmp_path, "foo: 1\n", point)
    try:
        pool.signal(signal.SIGUSR2)
        if point == "resume":
            wait_for(lambda: state(pool) == ["suspended"], 20, "the pause")
            pool.signal(signal.SIGCONT)
        killed_there(durable_redis, tmp_path, pool, point, worker)
        durable_redis.start()
        if point == "pause":
            wait_for(lambda: state(pool) == ["suspended"], 30, "the pause, once Redis is back")
            pool.signal(signal.SIGCONT)
        assert_serves_jobs_then_stops(durable_redis, pool, worker, "foo: 1\n")
    finally:
        pool.cleanup()
