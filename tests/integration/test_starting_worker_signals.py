"""USR1, USR2 and CONT that reach a worker still starting (in its ``after_prefork`` hook) through the real command."""

from __future__ import annotations

import signal

from ..harness import wait_for
from .lifecycle import assert_nothing_left, status, wait_status

SLOW_HOOK = {"TEST_PREFORK_SLEEP": "2"}


def in_prefork(redis_client, count: int) -> list[int]:
    """Wait until ``count`` workers entered the slow hook; their pids."""
    return wait_for(
        lambda: (
            redis_client.llen("test:in-prefork") >= count
            and [int(pid) for pid in redis_client.lrange("test:in-prefork", 0, -1)]
        ),
        message=f"{count} workers in after_prefork",
    )


def test_usr1_to_a_worker_added_by_ttin_does_not_kill_it(pool_factory, redis_client):
    pool = pool_factory("foo: 1\n", env=SLOW_HOOK).start()
    pool.wait_workers(1)
    pool.signal(signal.SIGTTIN)
    starting = in_prefork(redis_client, 2)[-1]
    pool.signal(signal.SIGUSR1)  # forwarded to every worker, the starting one too
    pool.wait_log(f"[{starting}] [foo] rq.worker: Worker")  # it got to rq's loop
    pool.wait_workers(2)
    assert starting in {p.pid for p in pool.worker_processes()}
    assert "killed by SIGUSR1" not in pool.log() and "exited" not in pool.log()
    assert "USR1 arrived while starting: applied now" in pool.log()
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)


def test_usr2_to_starting_workers_pauses_them_and_cont_resumes(pool_factory, queue, redis_client):
    pool = pool_factory("foo: 2\n", env=SLOW_HOOK).start()
    starting = set(in_prefork(redis_client, 2))
    pool.signal(signal.SIGUSR2)

    def both_suspended() -> bool:
        workers = pool.registered_workers().values()
        return len(workers) == 2 and all(w.get("state") == "suspended" for w in workers)

    wait_for(both_suspended, message="both workers started paused")
    job = queue("foo").enqueue("testapp.jobs.record", "after-pause")
    assert {p.pid for p in pool.worker_processes()} == starting
    assert status(job) == "queued"
    pool.signal(signal.SIGCONT)
    wait_status(job, "finished")
    assert {p.pid for p in pool.worker_processes()} == starting  # nobody was killed or replaced
    assert "killed by SIGUSR2" not in pool.log() and "exited" not in pool.log()
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)
