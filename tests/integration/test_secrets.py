"""Redis secrets in ``RQ_QUEUES`` never reach ``--check`` output, configuration errors or log lines."""

from __future__ import annotations

import json
import signal

import pytest

from ..harness import done_records, wait_for
from .test_operations import check, read, wait_text

SHAPES = {
    "s_userinfo": {"URL": "redis://app:s3cret-a@127.0.0.1:1/0"},
    "s_query": {"URL": "redis://127.0.0.1:1/0?socket_timeout=5&password=s3cret-b"},
    "s_password": {"HOST": "127.0.0.1", "PORT": 1, "DB": 0, "PASSWORD": "s3cret-c"},
    "s_kwargs": {
        "HOST": "127.0.0.1",
        "PORT": 1,
        "DB": 0,
        "CONNECTION_KWARGS": {"password": "s3cret-d", "ssl_options": {"ssl_password": "s3cret-e"}},
    },
    "s_sentinel": {
        "SENTINELS": [["127.0.0.1", 26379]],
        "MASTER_NAME": "m",
        "DB": 0,
        "PASSWORD": "s3cret-f",
        "SENTINEL_KWARGS": {"password": "s3cret-g"},
    },
    "s_client_kwargs": {"HOST": "127.0.0.1", "PORT": 1, "DB": 0, "REDIS_CLIENT_KWARGS": {"password": "s3cret-h"}},
}
ENV = {"TEST_RQ_QUEUES_EXTRA": json.dumps(SHAPES)}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_check_output_and_config_errors_mask_every_secret(tmp_path, shape):
    config = tmp_path / "pool.yml"
    config.write_text(f"{shape}: 1\n")
    result = check("--check", "-c", str(config), env=ENV)
    assert result.returncode == 0, result.stderr
    assert f"[{shape}] x1: default options; redis:" in result.stdout
    assert "s3cret" not in result.stdout + result.stderr, result.stdout

    config.write_text(f"'foo,{shape}': 1\n")  # a list over two connections: the error shows both
    result = check("--check", "-c", str(config), env=ENV)
    assert result.returncode == 2
    assert "use different Redis connections" in result.stderr, result.stderr
    assert "s3cret" not in result.stdout + result.stderr, result.stderr


def test_log_lines_mask_secrets(pool_factory, queue, redis_client, tmp_path):
    log_file = tmp_path / "pool.log"
    pool = pool_factory("foo: 1\n", args=("--log-file", str(log_file)), env=ENV).start()
    pool.wait_workers(1)
    pool.write_config("'foo,s_kwargs': 1\n")
    pool.signal(signal.SIGHUP)
    wait_text(log_file, "HUP: reload failed")
    queue("foo").enqueue("testapp.jobs.log_warning", "redis://user:s3cret-j@cache.example:6379/0")
    wait_for(lambda: done_records(redis_client), message="the job")
    wait_text(log_file, "job log line redis://user:***@cache.example:6379/0")  # a job's own log line too
    assert "CONNECTION_KWARGS={'password': '***'" in read(log_file)
    assert "s3cret" not in read(log_file) + pool.log()
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
