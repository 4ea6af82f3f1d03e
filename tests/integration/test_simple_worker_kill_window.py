"""USR1 to a SimpleWorker kills only the job's own code, never rq's recording of its outcome (real command)."""

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
