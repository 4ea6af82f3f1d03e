"""Shared checks for the signal, orphan and process-tree tests: jobs mid-flight and nothing left behind."""

from __future__ import annotations

import json
import os
from typing import Any

import psutil
import redis
from rq.job import Job
from rq.registry import FailedJobRegistry, StartedJobRegistry

from ..harness import Pool, wait_for

QUEUES = ("foo", "bar", "baz", "high", "low")
SLOW = "testapp.signal_jobs.slow"


def started(client: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(item) for item in client.lrange("test:started", 0, -1)]


def wait_started(client: redis.Redis, count: int = 1) -> list[dict[str, Any]]:
    """Wait until ``count`` jobs announced their start; return their records."""
    return wait_for(lambda: len(started(client)) >= count and started(client), message=f"{count} jobs started")


def status(job: Job) -> str:
    return job.get_status(refresh=True).value


def wait_status(job: Job, wanted: str, timeout: float = 20) -> None:
    wait_for(lambda: status(job) == wanted, timeout, f"job {job.id} {wanted} (is {status(job)})")


def failure_text(job: Job) -> str:
    """The reason stored with a failed job (the exception string of its latest result)."""
    job.refresh()
    return job.exc_info or ""


def assert_failed_with(job: Job, client: redis.Redis, *fragments: str) -> str:
    wait_status(job, "failed")
    assert job.id in FailedJobRegistry(job.origin, connection=client)
    text = failure_text(job)
    for fragment in fragments:
        assert fragment in text, text
    return text


def gone(pid: int) -> bool:
    """Exited: no such process, or a zombie its (new) parent has not reaped yet."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def zombie_children(pid: int) -> list[psutil.Process]:
    try:
        children = psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def assert_nothing_left(pool: Pool, client: redis.Redis, timeout: float = 20) -> None:
    """No process of this pool, no worker registered, no job STARTED or stranded, nothing a zombie."""
    wait_for(lambda: not pool.processes(), timeout, "every process of the pool to exit")
    assert pool.process is not None and pool.process.poll() is not None, "the master is still running"
    wait_for(lambda: not pool.registered_workers(), timeout, "the workers to unregister")
    assert zombie_children(os.getpid()) == []  # the master was reaped by this test
    for name in QUEUES:
        assert StartedJobRegistry(name, connection=client).get_job_ids(cleanup=False) == [], name
        assert client.llen(f"rq:queue:{name}:intermediate") == 0, name
