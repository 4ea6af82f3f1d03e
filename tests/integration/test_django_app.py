"""A real Django app under the pool (issue 17): system checks, the configuration check, warming."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from ..harness import MANAGE, done_records
from .lifecycle import assert_nothing_left, wait_status


def manage_check(tmp_path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, str(MANAGE), "check"], cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=60
    )


# -- system checks --------------------------------------------------------------------------


def test_failing_system_check_stops_the_start_with_djangos_message(pool_factory, redis_client):
    pool = pool_factory("foo: 1\n", env={"TEST_FAILING_CHECK": "1"})
    result = pool.run()
    assert result.returncode == 1, result.stdout
    assert "SystemCheckError: System check identified some issues" in result.stdout
    assert "testapp.E001" in result.stdout
    assert "spawned worker" not in result.stdout and "master started" not in result.stdout
    assert not pool.registered_workers()


def test_skip_checks_starts_despite_a_failing_check(pool_factory, redis_client):
    pool = pool_factory("foo: 1\n", ("--skip-checks",), env={"TEST_FAILING_CHECK": "1"}).start()
    pool.wait_workers(1)
    assert "testapp.E001" not in pool.log()
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)


def test_manage_py_check_catches_a_bad_rq_pool_yml(tmp_path):
    (tmp_path / "rq-pool.yml").write_text("foo:\n  count: many\n")
    result = manage_check(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "django_rq_pool.E001" in result.stderr
    assert "rq-pool.yml" in result.stderr and "count" in result.stderr
    (tmp_path / "rq-pool.yml").write_text("foo: 2\n")
    assert manage_check(tmp_path).returncode == 0


def test_manage_py_check_catches_a_bad_rq_pool_setting_and_an_unknown_queue(tmp_path):
    result = manage_check(tmp_path, {"TEST_RQ_POOL_SETTINGS": json.dumps({"nosuchqueue": 1})})
    assert result.returncode == 1
    assert "django_rq_pool.E001" in result.stderr and "nosuchqueue" in result.stderr
    assert manage_check(tmp_path, {"TEST_RQ_POOL_SETTINGS": json.dumps({"foo": 1})}).returncode == 0


def test_manage_py_check_without_any_pool_configuration_passes(tmp_path):
    result = manage_check(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "django_rq_pool" not in result.stderr


# -- warming --------------------------------------------------------------------------------


def run_cache_probe(pool_factory, queue, redis_client, env: dict[str, str]) -> tuple[dict, str]:
    pool = pool_factory("foo: 1\n", env=env).start()
    pool.wait_workers(1)
    job = queue("foo").enqueue("testapp.jobs.django_caches", "probe")
    wait_status(job, "finished")
    (record,) = done_records(redis_client)
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)
    return record, pool.log()


def test_job_children_find_djangos_lazy_caches_built_by_the_master(pool_factory, queue, redis_client):
    record, log = run_cache_probe(pool_factory, queue, redis_client, {})
    assert record["urls"] and record["included"] and record["templates"] and record["catalogue"], record
    assert record["compiled"], record
    assert record["regexes_compiled"] == [], record  # reverse(), the title and date filters: all cached
    assert record["reversed"] == "/more/7/" and record["rendered"] == "Hello Probe 11/30/2026"
    steps = ("URL resolver", "template engines", "templates", "translation catalogue", "built-in template filters")
    for step in (*steps, "regular expressions"):
        assert f"warmed the {step} in " in log


def test_warming_can_be_turned_off(pool_factory, queue, redis_client):
    record, log = run_cache_probe(pool_factory, queue, redis_client, {"TEST_RQ_POOL_WARM": "0"})
    assert not record["urls"] and not record["catalogue"], record  # (the system checks build the engines)
    assert record["regexes_compiled"], record
    assert record["reversed"] == "/more/7/"
    assert "warming Django's lazy caches is off (settings.RQ_POOL_WARM)" in log
    assert "warmed the" not in log
