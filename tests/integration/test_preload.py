"""Preloading job modules in the master, and the copy-on-write set-up of the GC around forks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from ..harness import MANAGE, done_records, wait_for

ONE = "foo: 2\n"


def _run_probe(pool, queue, redis_client, count: int = 3) -> list[dict]:
    pool.start()
    pool.wait_workers(2)
    for n in range(count):
        queue("foo").enqueue("testapp.tasks.report", f"probe-{n}")
    return wait_for(lambda: len(done_records(redis_client)) == count and done_records(redis_client), 30, "probe jobs")


def test_listed_module_is_imported_once_in_the_master(pool_factory, queue, redis_client):
    pool = pool_factory(ONE, env={"TEST_RQ_POOL_PRELOAD": json.dumps(["testapp.tasks"])})
    records = _run_probe(pool, queue, redis_client)
    assert {r["imported_by"] for r in records} == {pool.pid}
    assert all(r["pid"] != pool.pid for r in records)
    assert "preloaded 1 job module(s): testapp.tasks" in pool.log()


def test_without_preload_every_job_child_imports_the_module_again(pool_factory, queue, redis_client):
    pool = pool_factory(ONE)
    records = _run_probe(pool, queue, redis_client)
    assert all(r["imported_by"] == r["pid"] for r in records)
    assert "preloaded" not in pool.log()


def test_discovery_imports_the_jobs_and_tasks_modules_of_installed_apps(pool_factory, queue, redis_client):
    pool = pool_factory(ONE, env={"TEST_RQ_POOL_PRELOAD_DISCOVER": "1"})
    records = _run_probe(pool, queue, redis_client, count=1)
    assert records[0]["imported_by"] == pool.pid
    assert "testapp.jobs, testapp.tasks" in pool.log()


def test_a_module_that_fails_to_import_stops_the_pool_before_any_fork(pool_factory):
    pool = pool_factory(ONE, env={"TEST_RQ_POOL_PRELOAD": json.dumps(["testapp.tasks", "testapp.broken_jobs"])})
    result = pool.run()
    assert result.returncode == 2
    assert (
        "rqpool: configuration error: settings.RQ_POOL_PRELOAD: cannot import job module 'testapp.broken_jobs': "
        "ModuleNotFoundError: No module named 'not_a_real_package_for_rqpool' (at " in result.stdout
    )
    assert "testapp/broken_jobs.py:3)" in result.stdout
    assert "Traceback" not in result.stdout
    assert "spawned" not in result.stdout


def test_a_setting_that_is_not_a_list_is_a_configuration_error(pool_factory):
    pool = pool_factory(ONE, env={"TEST_RQ_POOL_PRELOAD": json.dumps("testapp.tasks")})
    result = pool.run()
    assert result.returncode == 2
    assert "settings.RQ_POOL_PRELOAD: must be a list of module names, got str 'testapp.tasks'" in result.stdout
    assert "spawned" not in result.stdout


def test_the_master_forks_a_frozen_image_with_its_collector_off_then_collects_again(pool_factory, tmp_path):
    probe = tmp_path / "gc.jsonl"
    hooks = {"after_spawn": ["testapp.gc_probe.in_master"], "after_prefork": ["testapp.gc_probe.in_worker"]}
    pool = pool_factory(ONE, env={"TEST_RQ_POOL_HOOKS": json.dumps(hooks), "TEST_GC_PROBE": str(probe)}).start()
    pool.wait_workers(2)
    victim = pool.worker_processes()[0].pid
    os.kill(victim, signal.SIGKILL)
    pool.wait_log(f"worker {victim} [foo] killed by SIGKILL")
    pool.wait_workers(2, timeout=30)

    def states() -> list[dict]:
        return [json.loads(line) for line in probe.read_text().splitlines()]

    wait_for(lambda: len([s for s in states() if s["where"] == "worker"]) == 3, message="3 worker probes")
    # Some builds freeze objects of their own at start-up (CPython 3.12.1: 375); nothing more is frozen yet.
    at_start = subprocess.run(
        [sys.executable, "-c", "import gc; print(gc.get_freeze_count())"], capture_output=True, text=True, check=True
    )
    assert states()[0] == {
        "where": "ready",
        "pid": pool.pid,
        "enabled": False,
        "frozen": int(at_start.stdout),
        "warm": False,
    }
    masters = [s for s in states() if s["where"] == "master"]
    workers = [s for s in states() if s["where"] == "worker"]
    assert [m["enabled"] for m in masters] == [False, False, True]  # off for the initial forks only
    assert all(
        m["frozen"] > int(at_start.stdout) and m["warm"] for m in masters
    )  # rq's timestamp parser built before any fork
    # Workers collect again, and inherited the frozen image (less what they have freed since).
    assert all(w["enabled"] and w["frozen"] > 0.99 * masters[0]["frozen"] for w in workers), (masters, workers)


def test_other_commands_load_the_project_with_the_collector_on(tmp_path):
    probe = tmp_path / "gc.jsonl"
    env = {**os.environ, "TEST_GC_PROBE": str(probe), "TEST_REDIS_URL": "redis://127.0.0.1:1/0"}
    result = subprocess.run(
        [sys.executable, str(MANAGE), "check"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(probe.read_text())["enabled"] is True


def test_job_ids_go_into_the_job_childs_environment_only(pool_factory, queue, redis_client):
    """rq's RQ_JOB_ID in the worker itself would cost a setenv that glibc never frees, every job."""
    pool = pool_factory("foo: 1\n", env={"TEST_HOOKS": "record-worker-environ"}).start()
    pool.wait_workers(1)
    (key,) = redis_client.smembers("rq:workers")
    jobs = [queue("foo").enqueue("testapp.jobs.record_environ", f"env-{n}") for n in range(3)]
    records = wait_for(lambda: len(done_records(redis_client)) == 3 and done_records(redis_client), 30, "3 jobs")
    assert {(r["job"], r["RQ_JOB_ID"]) for r in records} == {(job.id, job.id) for job in jobs}
    assert {r["RQ_WORKER_ID"] for r in records} == {key.decode().removeprefix("rq:worker:")}
    wait_for(lambda: redis_client.llen("test:worker-environ") == 3, 30, "the worker's own records")
    in_worker = [json.loads(x) for x in redis_client.lrange("test:worker-environ", 0, -1)]
    assert [r["RQ_JOB_ID"] for r in in_worker] == [None, None, None]
