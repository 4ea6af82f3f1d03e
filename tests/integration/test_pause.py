"""Pause is visible at once (issue 17): a paused worker's state in Redis says so within 1 s of USR2,
and says idle (or busy) again within 1 s of CONT."""

from __future__ import annotations

import signal
import time

from ..harness import wait_for
from .lifecycle import SLOW, assert_nothing_left, status, wait_started, wait_status

WITHIN = 1.0


def states(pool) -> list[str]:
    return sorted(fields.get("state", "") for fields in pool.registered_workers().values())


def seconds_until(pool, wanted: list[str]) -> float:
    """Seconds from now until the workers' states in Redis are ``wanted`` (fails after 10 s)."""
    started = time.monotonic()
    wait_for(lambda: states(pool) == wanted, 10, f"states {wanted} (are {states(pool)})", interval=0.01)
    return time.monotonic() - started


def test_idle_workers_report_the_pause_and_the_resume_within_a_second(pool_factory, queue, redis_client):
    pool = pool_factory("foo: 2\nbar: 1\n").start()
    pool.wait_workers(3)
    for _ in range(2):  # twice: the second pause starts from a worker that resumed
        pool.signal(signal.SIGUSR2)
        assert seconds_until(pool, ["suspended"] * 3) < WITHIN
        waiting = queue("foo").enqueue("testapp.jobs.record", "while-paused")
        time.sleep(0.5)  # a window in which a worker that ignored the pause would take the job
        assert status(waiting) == "queued"
        pool.signal(signal.SIGCONT)
        assert seconds_until(pool, ["idle"] * 3) < WITHIN
        wait_status(waiting, "finished")
    assert redis_client.llen("rq:queue:foo:intermediate") == 0
    assert "exited" not in pool.log() and "Traceback" not in pool.log()
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)


def test_a_busy_worker_reports_busy_until_its_job_ends_then_suspended(pool_factory, queue, redis_client):
    pool = pool_factory("foo: 2\n").start()
    pool.wait_workers(2)
    current = queue("foo").enqueue(SLOW, "current", 3)
    wait_started(redis_client)
    pool.signal(signal.SIGUSR2)
    assert seconds_until(pool, ["busy", "suspended"]) < WITHIN
    wait_status(current, "finished")
    assert seconds_until(pool, ["suspended", "suspended"]) < WITHIN
    pool.signal(signal.SIGCONT)
    assert seconds_until(pool, ["idle", "idle"]) < WITHIN
    later = queue("foo").enqueue(SLOW, "later", 3)
    wait_started(redis_client, 2)
    assert seconds_until(pool, ["busy", "idle"]) < WITHIN
    pool.signal(signal.SIGUSR2)
    assert seconds_until(pool, ["busy", "suspended"]) < WITHIN
    pool.signal(signal.SIGCONT)  # before the job ends: the busy worker never pauses
    assert seconds_until(pool, ["busy", "idle"]) < WITHIN
    wait_status(later, "finished")
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)
