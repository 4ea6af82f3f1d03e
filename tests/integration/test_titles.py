"""Process titles (issue 17): only the master is ever titled rqpool-master; every child at once has its own."""

from __future__ import annotations

import json
import signal

import psutil

from ..harness import wait_for
from .lifecycle import SLOW, assert_nothing_left, wait_started

WITH_SCHEDULER = "foo:\n  count: 2\n  with_scheduler: true\n"


def title_of(pid: int) -> str:
    try:
        return psutil.Process(pid).cmdline()[0]
    except (psutil.Error, IndexError):
        return ""


def test_only_the_master_is_titled_master_and_the_scheduler_says_what_it_is(pool_factory, queue, redis_client):
    pool = pool_factory(WITH_SCHEDULER, ("-a", "shop"), env={"TEST_HOOKS": "record-title"}).start()
    pool.wait_workers(2)
    pool.wait_log("Scheduler for foo started with PID")
    workers = {p.pid: p for p in pool.worker_processes()}
    # The after_prefork hook is user code: the worker was already titled as a worker when it ran.
    seen = [json.loads(item) for item in redis_client.lrange("test:titles", 0, -1)]
    assert {s["pid"] for s in seen} == set(workers)
    for item in seen:
        assert item["title"].startswith("rqpool-worker[shop]: starting [foo] #"), item
    # Exactly one scheduler wins rq's lock; it is a child of its worker and says what it is.
    schedulers = [c for w in workers.values() for c in w.children()]
    assert len(schedulers) == 1, schedulers
    (scheduler,) = schedulers
    owner = scheduler.ppid()
    assert title_of(scheduler.pid).startswith("rqpool-scheduler[shop]: [foo] rq scheduler of worker "), title_of(
        scheduler.pid
    )
    assert f"(pid {owner})" in title_of(scheduler.pid)
    queue("foo").enqueue(SLOW, "titled", 30)
    (record,) = wait_started(redis_client)
    wait_for(lambda: "Processing" in title_of(record["pid"]), message="the job child's title")

    def master_titled() -> list[int]:
        return [p.pid for p in pool.processes() if title_of(p.pid).startswith("rqpool-master")]

    assert master_titled() == [pool.pid]  # what `pgrep -f rqpool-master` finds
    pool.signal(signal.SIGQUIT)
    pool.signal(signal.SIGUSR1)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)
