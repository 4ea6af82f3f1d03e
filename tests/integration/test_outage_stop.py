"""Idle workers stop when told to while Redis is unreachable: the master's death, QUIT, WINCH.

rq's dequeue loop retries a lost connection with a backoff of up to 60 s without looking at the stop
flag; the pool's opening heartbeat waits out the outage instead, in slices that see a stop
(worker/outage.py). Each test kills its own redis-server, signals, and then starts Redis again on
the same port to show that no job was lost.
"""

from __future__ import annotations

import os
import re
import signal

import psutil
import pytest
from rq import Queue
from rq.job import Job

from ..harness import Pool, RedisServer, wait_for
from .lifecycle import gone

LISTS = 'foo: 1\n"foo,bar": 1\n'
STOP_DEADLINE = 5.0  # the stop is seen within STOP_POLL_SECONDS; the rest is the process exiting


def both_waiting_for_redis(pool: Pool) -> None:
    """Each worker is in the outage wait (not rq's own sleep) when the stop comes."""
    wait_for(
        lambda: len(set(re.findall(r"Worker (\S+): could not connect to Redis: ", pool.log()))) == 2,
        30,
        "both workers waiting for Redis",
    )


def queued_jobs(server: RedisServer, paused: bool) -> list[Job]:
    """While paused, jobs stay queued; they must survive the outage and the stop."""
    if not paused:
        return []
    client = server.client()
    return [Queue(name, connection=client).enqueue("testapp.jobs.record", name) for name in ("foo", "bar")]


def start_pool(server: RedisServer, tmp_path, paused: bool) -> tuple[Pool, list[int]]:
    pool = Pool(server, tmp_path, LISTS).start()
    assert sorted(pool.wait_workers(2)) == ["foo", "foo,bar"]
    if paused:
        pool.signal(signal.SIGUSR2)
        wait_for(
            lambda: [f.get("state") for f in pool.registered_workers().values()] == ["suspended"] * 2,
            message="both workers paused",
        )
    return pool, [p.pid for p in pool.worker_processes()]


def assert_stopped_for_the_outage(pool: Pool, workers: list[int]) -> None:
    wait_for(lambda: all(gone(pid) for pid in workers), STOP_DEADLINE, "every worker to exit")
    log = pool.log()
    for pid in workers:
        assert re.search(rf"\(pid {pid}, queues [a-z,]+\): stopping while Redis is unreachable", log), log[-3000:]
    assert "Traceback" not in log and "unhandled exception" not in log, log[-3000:]
    assert "cannot interrupt" not in log, log[-3000:]  # it was never left blocked: the outage path saw the stop


def assert_nothing_lost(server: RedisServer, tmp_path, jobs: list[Job]) -> None:
    """Redis back on the same port: the queued jobs are still there, and a --burst pool runs them."""
    server.start()
    client = server.client()
    assert [Queue(name, connection=client).count for name in ("foo", "bar")] == [len(jobs) // 2] * 2
    jobs = [Job.fetch(job.id, connection=client) for job in jobs]
    assert [job.get_status() for job in jobs] == ["queued"] * len(jobs)
    drain = Pool(server, tmp_path, LISTS, ("--burst",))
    assert drain.run().returncode == 0, drain.log()[-3000:]
    assert [job.get_status(refresh=True) for job in jobs] == ["finished"] * len(jobs)


@pytest.mark.parametrize("paused", [False, True], ids=["dequeueing", "paused"])
def test_master_death_during_an_outage_stops_every_idle_worker(durable_redis, tmp_path, paused):
    pool, workers = start_pool(durable_redis, tmp_path, paused)
    try:
        jobs = queued_jobs(durable_redis, paused)
        durable_redis.stop()
        both_waiting_for_redis(pool)
        os.kill(pool.pid, signal.SIGKILL)
        assert pool.wait_exit() == -signal.SIGKILL
        assert_stopped_for_the_outage(pool, workers)
        assert_nothing_lost(durable_redis, tmp_path, jobs)
    finally:
        pool.cleanup()


@pytest.mark.parametrize("signum", [signal.SIGQUIT, signal.SIGTERM, signal.SIGINT], ids=["QUIT", "TERM", "INT"])
def test_stop_signal_to_a_live_master_during_an_outage_exits_0(durable_redis, tmp_path, signum):
    pool, workers = start_pool(durable_redis, tmp_path, paused=signum == signal.SIGQUIT)
    try:
        jobs = queued_jobs(durable_redis, paused=signum == signal.SIGQUIT)
        durable_redis.stop()
        both_waiting_for_redis(pool)
        pool.signal(signum)
        assert pool.wait_exit(STOP_DEADLINE + 5) == 0, pool.log()[-3000:]
        assert_stopped_for_the_outage(pool, workers)
        assert_nothing_lost(durable_redis, tmp_path, jobs)
    finally:
        pool.cleanup()


def test_winch_during_an_outage_stops_the_workers_and_hup_brings_them_back(durable_redis, tmp_path):
    pool, workers = start_pool(durable_redis, tmp_path, paused=False)
    try:
        durable_redis.stop()
        both_waiting_for_redis(pool)
        pool.signal(signal.SIGWINCH)
        assert_stopped_for_the_outage(pool, workers)
        assert pool.process.poll() is None
        durable_redis.start()
        pool.signal(signal.SIGHUP)

        def listening() -> list[psutil.Process]:
            fresh = [p for p in pool.worker_processes() if p.pid not in workers]
            return [p for p in fresh if "Listening on" in " ".join(p.cmdline())]

        wait_for(lambda: len(listening()) == 2, 30, "two new workers listening")
    finally:
        pool.cleanup()
