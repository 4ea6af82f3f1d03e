"""The foundation through the real command: the seed's 7 workers, jobs flowing, replacement."""

from __future__ import annotations

import os
import signal

import psutil
from setproctitle import getproctitle  # noqa: F401  (setproctitle must be installed for titles)

from ..harness import done_records, wait_for

SEED = 'foo: 1\nbar: 2\n"foo,bar,baz": 4\n'


def test_seed_config_starts_seven_workers_on_the_right_lists(pool_factory):
    pool = pool_factory(SEED).start()
    lists = pool.wait_workers(7)
    assert lists == ["bar", "bar", "foo", "foo,bar,baz", "foo,bar,baz", "foo,bar,baz", "foo,bar,baz"]
    master = psutil.Process(pool.pid)
    assert master.num_threads() == 1  # fork-safe: the master never starts a thread
    assert master.cmdline()[0].startswith("rqpool-master[testproject]: running: managing [")
    titles = sorted(p.cmdline()[0].split(": ", 1)[1] for p in pool.worker_processes())
    assert titles == sorted(f"Listening on {q}" for q in lists)
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert not pool.processes()


def test_jobs_on_every_queue_finish(pool_factory, queue, redis_client):
    pool = pool_factory(SEED).start()
    pool.wait_workers(7)
    jobs = [
        queue(name).enqueue("testapp.jobs.record", f"{name}-{n}") for name in ("foo", "bar", "baz") for n in range(5)
    ]
    wait_for(lambda: len(done_records(redis_client)) == len(jobs), message="15 jobs recorded")
    wait_for(lambda: all(job.get_status(refresh=True) == "finished" for job in jobs), message="15 jobs finished")
    workers = {p.pid for p in pool.worker_processes()}
    for record in done_records(redis_client):
        assert record["worker_pid"] in workers  # three levels: master -> worker -> job child
        assert record["pid"] not in workers


def test_killed_worker_is_replaced(pool_factory):
    pool = pool_factory(SEED).start()
    pool.wait_workers(7)
    victim = next(p for p in pool.worker_processes() if p.cmdline()[0].endswith("Listening on foo"))
    os.kill(victim.pid, signal.SIGKILL)
    pool.wait_log(f"worker {victim.pid} [foo] killed by SIGKILL")
    lists = pool.wait_workers(7)
    assert lists.count("foo") == 1
    assert victim.pid not in {p.pid for p in pool.worker_processes()}


def test_bad_config_exits_2_and_starts_nothing(pool_factory):
    pool = pool_factory("foo: -1\n")
    result = pool.run()
    assert result.returncode == 2
    assert "worker count must be a non-negative integer, got -1" in result.stdout
    assert "Traceback" not in result.stdout
    assert "spawned" not in result.stdout
