"""Accounting for a worker that died abnormally: its job ends failed with the reason, promptly.

Without this, rq fails such a job only at its next registry maintenance (up to 10 minutes
later, as AbandonedJobError) and the dead worker's key lingers in Redis. The master runs
this in a short-lived child so that the master itself never talks to Redis.
"""

from __future__ import annotations

import logging
import time

import django_rq
from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.executions import Execution
from rq.job import JobStatus
from rq.registry import StartedJobRegistry
from rq.utils import now

from .plan import QueueGroup

log = logging.getLogger(__name__)
RETRY_FOR_SECONDS = 600.0


def fail_jobs_of_dead_worker(name: str, group: QueueGroup, reason: str) -> int:
    """Fail the jobs a dead worker left STARTED and register its death; returns how many."""
    options = group.options
    worker = django_rq.get_worker(
        *group.queues,
        job_class=options.job_class,
        queue_class=options.queue_class,
        worker_class=options.worker_class,
        name=name,
    )
    connection = worker.connection
    failed = 0
    for queue in worker.queues:
        registry = StartedJobRegistry(queue.name, connection, job_class=worker.job_class, serializer=worker.serializer)
        for job_id, execution_id in registry.get_job_and_execution_ids(cleanup=False):
            try:
                execution = Execution.fetch(execution_id, job_id, connection)
            except (NoSuchJobError, ValueError, KeyError):
                continue
            if execution.worker_name != name:
                continue
            try:
                job = worker.job_class.fetch(job_id, connection=connection, serializer=worker.serializer)
            except NoSuchJobError:
                registry.remove_execution(execution)
                continue
            if job.get_status() != JobStatus.STARTED:
                registry.remove_execution(execution)
                continue
            job.ended_at = now()
            worker.execution = execution
            worker.handle_job_failure(job, queue, started_job_registry=registry, exc_string=reason)
            log.warning("job %s of dead worker %s failed: %s", job_id, name, reason)
            failed += 1
    worker.register_death()
    return failed


def run_janitor(name: str, group: QueueGroup, reason: str) -> int:
    """Retry through a Redis outage, with backoff, for up to ten minutes."""
    deadline = time.monotonic() + RETRY_FOR_SECONDS
    delay = 0.5
    while True:
        try:
            fail_jobs_of_dead_worker(name, group, reason)
            return 0
        except RedisError as exc:
            if time.monotonic() + delay > deadline:
                log.error("could not account for dead worker %s: %s; rq's maintenance will", name, exc)
                return 1
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
