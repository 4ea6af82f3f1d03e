"""A SimpleWorker job without a timeout is never judged stuck while its worker lives (real Redis, real check)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

from rq import Queue
from rq.utils import utcformat

from django_rq_pool.master.stuck import HeartbeatMonitor

from ..harness import TEST_PROJECT

READ = (
    "import sys, django\n"
    "django.setup()\n"
    "from django_rq_pool.helpers.heartbeat_check import Watched, read_heartbeats\n"
    "pid, name = int(sys.argv[1]), sys.argv[2]\n"
    "sys.stdout.writelines(read_heartbeats([Watched(pid, name, 'foo', 'rq.worker.SimpleWorker')]))\n"
)


def heartbeat_report(redis_server, pid: int, name: str) -> str:
    """What the heartbeat check child reports, run as a separate process against the test Redis."""
    env = {**os.environ, "TEST_REDIS_URL": redis_server.url, "DJANGO_SETTINGS_MODULE": "testproject.settings"}
    result = subprocess.run(
        [sys.executable, "-c", READ, str(pid), name],
        cwd=TEST_PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def judged_stuck(report: str, pid: int, silent_for: float, stuck_timeout: float) -> bool:
    now = time.time()
    monitor = HeartbeatMonitor(stuck_timeout=stuck_timeout, interval=1, reachable_since=now - silent_for)
    read_fd, write_fd = os.pipe()
    os.write(write_fd, report.encode())
    os.close(write_fd)
    monitor.started(1, read_fd, time.monotonic())
    return [stuck for stuck, _, _ in monitor.finished(True, {pid: now - silent_for})] == [pid]


def busy_in_process(redis_client, name: str, silent_for: float, **enqueue: object) -> None:
    """A SimpleWorker's Redis record while it runs a job in-process: busy, last heartbeat long ago."""
    job = Queue("foo", connection=redis_client).enqueue("testapp.jobs.record", "in-process", **enqueue)
    beat = datetime.now(timezone.utc) - timedelta(seconds=silent_for)
    redis_client.hset(
        f"rq:worker:{name}", mapping={"state": "busy", "current_job": job.id, "last_heartbeat": utcformat(beat)}
    )


def test_a_job_without_timeout_keeps_its_simple_worker_alive_however_long_it_runs(redis_client, redis_server):
    pid = os.getpid()
    busy_in_process(redis_client, "no-timeout", 400, job_timeout=-1)
    report = heartbeat_report(redis_server, pid, "no-timeout")
    assert not judged_stuck(report, pid, silent_for=400, stuck_timeout=4)  # was: killed at 4 + 180 s


def test_a_job_with_a_timeout_still_gets_only_that_much(redis_client, redis_server):
    pid = os.getpid()
    busy_in_process(redis_client, "timed", 100, job_timeout=30)
    report = heartbeat_report(redis_server, pid, "timed")
    assert not judged_stuck(report, pid, silent_for=30, stuck_timeout=4)
    assert judged_stuck(report, pid, silent_for=100, stuck_timeout=4)
