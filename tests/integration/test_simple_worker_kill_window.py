"""A SimpleWorker runs jobs in its own process: what the pool does to the worker must not hit the job (real command)."""

from __future__ import annotations

import signal

from rq.registry import FailedJobRegistry, FinishedJobRegistry

from ..harness import wait_for
from .lifecycle import assert_nothing_left, status

SLOW_SUCCESS = "foo:\n  count: 1\n  worker_class: testapp.workers.SlowSuccessSimpleWorker\n"


def test_usr1_in_handle_job_success_leaves_the_job_finished_only(pool_factory, queue, redis_client):
    pool = pool_factory(SLOW_SUCCESS).start()
    pool.wait_workers(1)
    job = queue("foo").enqueue("testapp.jobs.record", "returned-then-usr1")
    wait_for(lambda: redis_client.llen("test:in-success"), message="the job recorded as finished")
    pool.signal(signal.SIGUSR1)  # forwarded while the worker is still in rq's handle_job_success
    pool.wait_workers(1)  # idle again
    assert status(job) == "finished"
    assert job.id in FinishedJobRegistry("foo", connection=redis_client)
    assert job.id not in FailedJobRegistry("foo", connection=redis_client)
    assert "function has returned; nothing to kill" in pool.log()
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)


def test_a_warm_stop_never_unblocks_the_jobs_own_blocking_call(pool_factory, queue, redis_client):
    config = "foo:\n  count: 1\n  worker_class: testapp.workers.SlowStartSimpleWorker\n"
    pool = pool_factory(config).start()
    pool.wait_workers(1)
    job = queue("foo").enqueue("testapp.jobs.blpop_then_record", "blocked-on-its-own", 3)
    wait_for(lambda: redis_client.llen("test:dequeued"), message="the job dequeued")
    pool.signal(signal.SIGQUIT)  # reaches the worker after the dequeue, before the job starts
    assert pool.wait_exit() == 0
    assert status(job) == "finished", job.exc_info
    assert "UNBLOCKED" not in pool.log()
    assert_nothing_left(pool, redis_client)
