"""Jobs the pool kills tell the application (issue 17): rq's on_failure and the job_killed hook, per kill path.

The hook and the callback write rows to a PostgreSQL table of this test's own, as an application
keeping its own job records would.
"""

from __future__ import annotations

import json
import os
import re
import signal
import uuid

import pytest
from rq import Callback

from ..harness import wait_for
from .lifecycle import SLOW, assert_failed_with, assert_nothing_left, wait_started

ON_FAILURE = Callback("testapp.killed_hooks.on_failure")
SIMPLE = "foo:\n  count: 1\n  worker_class: rq.worker.SimpleWorker\n"


@pytest.fixture
def killed_table(postgres):
    import psycopg

    table = f"rqpool_killed_{uuid.uuid4().hex[:12]}"
    params = {"host": "127.0.0.1", "port": 5432, "dbname": "test", "user": postgres["TEST_PG_USER"], "autocommit": True}
    with psycopg.connect(**params) as conn:
        conn.execute(f"CREATE TABLE {table} (job_id text, kind text, reason text, pid int, parent int)")

    def rows() -> list[tuple]:
        with psycopg.connect(**params) as conn:
            return conn.execute(f"SELECT job_id, kind, reason, pid, parent FROM {table} ORDER BY kind").fetchall()

    try:
        yield {**postgres, "TEST_KILLED_TABLE": table}, rows
    finally:
        with psycopg.connect(**params) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")


def wait_rows(rows, count: int) -> list[tuple]:
    return wait_for(lambda: len(found := rows()) >= count and found, 30, f"{count} rows from the hooks")


def assert_told(rows, pool, job, *fragments: str, on_failure: str = "on_failure:JobKilledByPool") -> list[tuple]:
    """One on_failure row and one hook row for ``job``, each with the reason, from no master process."""
    found = wait_rows(rows, 2)
    assert sorted(kind for _, kind, *_ in found) == sorted([on_failure, "hook"]), found
    for job_id, _, reason, pid, _parent in found:
        assert job_id == job.id
        for fragment in fragments:
            assert fragment in reason, reason
        assert pid != pool.pid, "ran in the master"
    return found


def test_usr1_kill_runs_on_failure_and_the_hooks_and_a_raising_hook_changes_nothing(
    pool_factory, queue, redis_client, killed_table
):
    env, rows = killed_table
    env = {**env, "TEST_RQ_POOL_HOOKS": json.dumps({"job_killed": ["testapp.killed_hooks.raising"]})}
    pool = pool_factory("foo: 1\n", env=env).start()
    pool.wait_workers(1)
    (worker,) = pool.worker_processes()
    job = queue("foo").enqueue(SLOW, "victim", 60, on_failure=ON_FAILURE)
    wait_started(redis_client)
    pool.signal(signal.SIGUSR1)
    assert_failed_with(job, redis_client, "killed by rqpool (SIGUSR1 to worker")
    found = assert_told(rows, pool, job, "killed by rqpool (SIGUSR1 to worker")
    assert {parent for *_, parent in found} == {worker.pid}  # a child of the worker that lost the job
    pool.wait_log("job_killed hook testapp.killed_hooks.raising raised")
    assert "RuntimeError: job_killed hook failed on purpose" in pool.log()
    later = queue("foo").enqueue("testapp.jobs.record", "after")
    wait_for(lambda: later.get_status(refresh=True) == "finished", message="a later job")
    assert [p.pid for p in pool.worker_processes()] == [worker.pid]  # the worker lives on
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)


def test_usr1_kill_in_a_simple_worker_runs_on_failure_once(pool_factory, queue, redis_client, killed_table):
    env, rows = killed_table
    pool = pool_factory(SIMPLE, env=env).start()
    pool.wait_workers(1)
    job = queue("foo").enqueue(SLOW, "victim", 60, on_failure=ON_FAILURE)
    wait_started(redis_client)
    pool.signal(signal.SIGUSR1)
    assert_failed_with(job, redis_client, "killed by rqpool (SIGUSR1")
    assert_told(rows, pool, job, "killed by rqpool (SIGUSR1")  # rq ran on_failure in-process, the pool did not again
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert len(rows()) == 2
    assert_nothing_left(pool, redis_client)


def test_term_immediate_runs_on_failure_and_the_hooks_before_the_pool_exits(
    pool_factory, queue, redis_client, killed_table
):
    env, rows = killed_table
    pool = pool_factory("foo: 1\n", env=env).start()
    pool.wait_workers(1)
    job = queue("foo").enqueue(SLOW, "victim", 60, on_failure=ON_FAILURE)
    wait_started(redis_client)
    pool.signal(signal.SIGTERM)
    assert pool.wait_exit() == 0
    assert_failed_with(job, redis_client, "killed by rqpool (SIGUSR1")  # the master answers TERM with QUIT and USR1
    assert_told(rows, pool, job, "killed by rqpool (SIGUSR1")  # the master answers TERM with QUIT and USR1
    assert_nothing_left(pool, redis_client)


def test_kill_9_of_a_job_child_runs_on_failure_and_the_hooks(pool_factory, queue, redis_client, killed_table):
    """What the kernel's OOM killer does to a job child that grows too big."""
    env, rows = killed_table
    pool = pool_factory("foo: 1\n", env=env).start()
    pool.wait_workers(1)
    job = queue("foo").enqueue(SLOW, "victim", 60, on_failure=ON_FAILURE)
    (record,) = wait_started(redis_client)
    os.kill(record["pid"], signal.SIGKILL)
    assert_failed_with(job, redis_client, "Work-horse terminated unexpectedly")
    assert_told(rows, pool, job, "Work-horse terminated unexpectedly", "(signal 9)")
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)


def test_kill_9_of_a_worker_runs_on_failure_and_the_hooks_from_the_janitor(
    pool_factory, queue, redis_client, killed_table
):
    env, rows = killed_table
    pool = pool_factory("foo: 1\n", env=env).start()
    pool.wait_workers(1)
    (worker,) = pool.worker_processes()
    job = queue("foo").enqueue(SLOW, "victim", 60, on_failure=ON_FAILURE)
    wait_started(redis_client)
    os.kill(worker.pid, signal.SIGKILL)
    assert_failed_with(job, redis_client, "killed by SIGKILL")
    found = assert_told(rows, pool, job, f"(pid {worker.pid}, queues foo) killed by SIGKILL")
    assert all(parent not in (pool.pid, worker.pid) for *_, parent in found)  # a child of the janitor
    pool.wait_workers(1)
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)


def test_stuck_worker_kill_runs_on_failure_and_the_hooks(pool_factory, queue, redis_client, killed_table):
    env, rows = killed_table
    pool = pool_factory("foo: 1\n", ("--stuck-timeout", "4"), env=env).start()
    pool.wait_workers(1)
    (worker,) = pool.worker_processes()
    job = queue("foo").enqueue(SLOW, "victim", 60, on_failure=ON_FAILURE)
    wait_started(redis_client)
    os.kill(worker.pid, signal.SIGSTOP)
    assert_failed_with(job, redis_client, "stuck: no heartbeat in Redis")
    assert_told(rows, pool, job, "stuck: no heartbeat in Redis")
    pool.wait_workers(1)
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)


def test_a_hook_that_hangs_is_killed_at_its_timeout_and_the_worker_goes_on(
    pool_factory, queue, redis_client, killed_table
):
    env, rows = killed_table
    env = {
        **env,
        "TEST_RQ_POOL_JOB_KILLED_TIMEOUT": "2",
        "TEST_RQ_POOL_HOOKS": json.dumps({"job_killed": ["testapp.killed_hooks.hanging"]}),
    }
    pool = pool_factory("foo: 1\n", env=env).start()
    pool.wait_workers(1)
    job = queue("foo").enqueue(SLOW, "victim", 60)
    wait_started(redis_client)
    pool.signal(signal.SIGUSR1)
    assert_failed_with(job, redis_client, "killed by rqpool (SIGUSR1")
    pool.wait_log("hooks still running after 2s; killed")
    assert [kind for _, kind, *_ in rows()] == ["hook"]  # the decorated hook ran before the hanging one
    later = queue("foo").enqueue("testapp.jobs.record", "after")
    wait_for(lambda: later.get_status(refresh=True) == "finished", message="a later job")
    assert not re.search(r"rqpool-job-killed", " ".join(p.cmdline()[0] for p in pool.processes() if p.cmdline()))
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)
