"""Issue 2 through the real command: sources, environments, options, hooks, burst, fork safety with PostgreSQL."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from ..harness import MANAGE, done_records, wait_for


def test_settings_source_environment_section_and_first_log_line(pool_factory):
    settings = {"foo": 1, "production": {"bar": 2}}
    pool = pool_factory(args=("-E", "production"), env={"TEST_RQ_POOL_SETTINGS": json.dumps(settings)}).start()
    assert pool.wait_workers(3) == ["bar", "bar", "foo"]
    first = next(line for line in pool.log().splitlines() if "django_rq_pool" in line)
    assert "configuration from settings.RQ_POOL (environment 'production')" in first


def test_per_list_options_reach_the_workers(pool_factory, queue, redis_client):
    config = "foo:\n  count: 1\n  worker_class: rq.worker.SimpleWorker\n  max_jobs: 2\nbar: 1\n"
    pool = pool_factory(config).start()
    pool.wait_workers(2)
    simple = next(p for p in pool.worker_processes() if p.cmdline()[0].endswith("Listening on foo"))
    jobs = [queue("foo").enqueue("testapp.jobs.record", f"s{n}") for n in range(2)]
    wait_for(lambda: len(done_records(redis_client)) == 2, message="2 jobs on foo")
    assert {r["pid"] for r in done_records(redis_client)} == {simple.pid}  # in-process: no job child
    wait_for(lambda: all(job.get_status(refresh=True) == "finished" for job in jobs), message="jobs finished")
    pool.wait_log(f"worker {simple.pid} [foo] exited with status 0")  # max_jobs=2 (+10% jitter of 0)
    pool.wait_workers(2)


def test_cli_class_defaults_and_scheduler(pool_factory):
    pool = pool_factory("foo: 1\n", args=("--worker-class", "rq.worker.SimpleWorker", "--with-scheduler")).start()
    pool.wait_workers(1)
    pool.wait_log("Scheduler for foo started with PID")


def test_after_prefork_gets_worker_and_context_and_runs_before_jobs(pool_factory, redis_client):
    pool = pool_factory('foo: 1\n"bar, baz": 2\n', env={"TEST_HOOKS": "record-prefork"}).start()
    pool.wait_workers(3)
    calls = [json.loads(x) for x in redis_client.lrange("test:prefork", 0, -1)]
    assert sorted((c["queues"], c["index"]) for c in calls) == [(["bar", "baz"], 0), (["bar", "baz"], 1), (["foo"], 0)]
    assert {c["pid"] for c in calls} == {p.pid for p in pool.worker_processes()}
    assert {c["name"] for c in calls} == set(pool.registered_workers())


def test_raising_after_prefork_hook_is_logged_and_the_master_lives(pool_factory):
    pool = pool_factory("foo: 1\n", env={"TEST_HOOKS": "prefork-raises"}).start()
    pool.wait_log("after_prefork failed on purpose in [foo]")
    pool.wait_log("[foo] exited with status 3")
    log = pool.log()
    line = next(x for x in log.splitlines() if "after_prefork hook failed in worker" in x)
    assert "[foo]" in line
    assert pool.process.poll() is None


def test_raising_after_spawn_hook_is_logged_and_survived(pool_factory):
    pool = pool_factory("foo: 2\n", env={"TEST_HOOKS": "spawn-raises"}).start()
    pool.wait_workers(2)
    assert "after_spawn hook failed for worker" in pool.log()


def test_raising_setup_hook_starts_nothing(pool_factory):
    result = pool_factory("foo: 2\n", env={"TEST_HOOKS": "setup-raises"}).run()
    assert result.returncode == 1
    assert "setup hook failed; nothing was started" in result.stdout
    assert "spawned worker" not in result.stdout


def test_hooks_by_dotted_path_in_settings(pool_factory):
    hooks = {"after_spawn": ["testapp.rqpool_hooks.after_spawn"], "nope": []}
    result = pool_factory("foo: 1\n", env={"TEST_RQ_POOL_HOOKS": json.dumps(hooks)}).run()
    assert result.returncode == 2
    assert "settings.RQ_POOL_HOOKS: key 'nope': unknown hook kind" in result.stdout


def test_burst_drains_every_queue_then_exits_0(pool_factory, queue, redis_client):
    for name in ("foo", "bar", "baz"):
        for n in range(4):
            queue(name).enqueue("testapp.jobs.record", f"{name}{n}")
    result = pool_factory('foo: 1\n"bar,baz": 2\n', args=("--burst",)).run(timeout=60)
    assert result.returncode == 0, result.stdout
    assert len(done_records(redis_client)) == 12
    assert "burst: every worker drained its queues" in result.stdout


def test_help_documents_every_option():
    out = subprocess.run([sys.executable, str(MANAGE), "rqpool", "--help"], capture_output=True, text=True, check=True)
    for option in (
        "--config",
        "--environment",
        "--worker-class",
        "--job-class",
        "--queue-class",
        "--with-scheduler",
        "--burst",
        "--term",
        "--graceful-timeout",
        "--verbosity",
        "--check",
    ):
        assert option in out.stdout


@pytest.mark.parametrize(
    "config", ["foo: 4\n", "foo:\n  count: 4\n  prefork_job_child: true\n"], ids=["fork-per-job", "prefork"]
)
def test_fork_safety_with_postgresql(pool_factory, queue, redis_client, postgres, config):
    """No DB connection is used by two processes: master, worker parents and job children all differ.

    With ``prefork_job_child`` the job child is forked while the worker holds its own connection.
    """
    env = {**postgres, "TEST_HOOKS": "db-setup,record-prefork,db-prefork"}
    pool = pool_factory(config, env=env).start()
    pool.wait_workers(4)
    jobs = [queue("foo").enqueue("testapp.jobs.db_backend", f"q{n}") for n in range(200)]
    wait_for(lambda: len(done_records(redis_client)) == 200, timeout=90, message="200 database jobs")
    wait_for(lambda: all(job.get_status(refresh=True) == "finished" for job in jobs), 60, "200 jobs finished")
    prefork = [json.loads(x) for x in redis_client.lrange("test:prefork", 0, -1)]
    master_backend = {int(prefork[0]["master_backend"])}
    worker_backends = {p["backend"] for p in prefork}
    job_backends = {r["backend"] for r in done_records(redis_client)}
    assert len(worker_backends) == 4
    assert not master_backend & worker_backends
    assert not master_backend & job_backends
    assert not worker_backends & job_backends
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
