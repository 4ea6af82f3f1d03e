"""A job's own log lines and rq's on stderr, with no ``--log-file`` (through the real ``manage.py rqpool``).

Python writes a record that finds no handler through its handler of last resort, which prints the
bare message. A job's ``logging.getLogger("app").warning(...)``, in a project whose LOGGING sets
no handler for it, must still carry the pool's format (pid and queue list), and no line may come
out twice when the project does configure handlers.
"""

from __future__ import annotations

import json
import re
import signal

import pytest

from ..harness import done_records, wait_for

LOG_JOB = "testapp.jobs.log_warning"
POOL_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<level>[A-Z]+) +\[(?P<pid>\d+)\] \[(?P<queues>[^\]]+)\] "
    r"(?P<logger>[\w.]+): (?P<message>.*)$"
)
APP_LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"app": {"format": "app-format [%(queues)s] %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "app"}},
}


def run_one_job(pool_factory, queue, redis_client, token: str, env: dict[str, str] | None = None):
    """Start a one-worker pool on [foo], run the logging job; returns the pool and the job's record."""
    pool = pool_factory("foo: 1\n", env=env).start()
    pool.wait_workers(1)
    job = queue("foo").enqueue(LOG_JOB, token)
    (record,) = wait_for(lambda: done_records(redis_client), message="the job's record")
    pool.wait_log(f"Successfully completed {LOG_JOB}('{token}') job")
    assert record["job"] == job.id
    return pool, record


def lines_about(text: str, *needles: str) -> list[str]:
    return [line for line in text.splitlines() if any(needle in line for needle in needles)]


def stop(pool) -> None:
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    wait_for(lambda: not pool.processes(), message="no process of the pool left")


def test_job_and_rq_lines_carry_the_pool_format_when_nothing_is_configured(pool_factory, queue, redis_client):
    pool, record = run_one_job(pool_factory, queue, redis_client, "bare-stderr")
    about = lines_about(pool.log(), "bare-stderr", record["job"])
    assert len(about) >= 3, about  # rq's dequeue line, the job's warning, rq's "Successfully completed"
    for line in about:
        assert POOL_LINE.match(line), f"a line without the pool's format: {line!r}"
    (job_line,) = lines_about(pool.log(), "job log line bare-stderr")
    fields = POOL_LINE.match(job_line)
    assert fields is not None
    assert fields["level"] == "WARNING" and fields["logger"] == "testapp.jobs"
    assert (int(fields["pid"]), fields["queues"]) == (record["pid"], "foo")  # the job child's pid and list
    stop(pool)


@pytest.mark.parametrize(
    "configured",
    [
        pytest.param({"root": {"handlers": ["console"], "level": "WARNING"}}, id="root-handler"),
        pytest.param({"loggers": {"rq": {"handlers": ["console"], "level": "INFO"}}}, id="rq-handler-only"),
    ],
)
def test_no_line_comes_out_twice_when_the_app_configures_handlers(pool_factory, queue, redis_client, configured):
    env = {"TEST_LOGGING": json.dumps({**APP_LOGGING, **configured})}
    pool, record = run_one_job(pool_factory, queue, redis_client, "app-handlers", env)
    log = pool.log()
    (job_line,) = lines_about(log, "job log line app-handlers")
    (completed,) = lines_about(log, f"Successfully completed {LOG_JOB}('app-handlers')")
    assert completed.startswith("app-format [foo] rq.worker: "), completed  # rq's: the app's handler, once
    if "root" in configured:
        assert job_line == "app-format [foo] testapp.jobs: job log line app-handlers"
    else:  # no handler for the job's logger: the pool's format, from the job child
        fields = POOL_LINE.match(job_line)
        assert fields is not None, job_line
        assert (int(fields["pid"]), fields["queues"]) == (record["pid"], "foo")
    stop(pool)
