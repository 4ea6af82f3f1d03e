"""Accounting for a worker that died abnormally: its job ends failed with the reason, promptly.

Without this, rq fails such a job only at its next registry maintenance (up to 10 minutes
later, as AbandonedJobError) and the dead worker's key lingers in Redis. The master runs
this in a short-lived child so that the master itself never talks to Redis. Each job it fails
also runs its ``on_failure`` callback and the ``job_killed`` hooks (common/job_killed.py).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import django_rq
from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.executions import Execution
from rq.job import JobStatus
from rq.registry import StartedJobRegistry
from rq.utils import now

from django_rq_pool.common.child import run_logged
from django_rq_pool.common.job_killed import report_killed_job
from django_rq_pool.compat import execution_worker_name
from django_rq_pool.config.plan import QueueGroup

log = logging.getLogger(__name__)
RETRY_FOR_SECONDS = 600.0
STRANDED_GRACE = 5.0  # a live worker registers a dequeued job within milliseconds; 5 s means nobody will

# Put a job that never started back at the head of its queue, once: only if it is still where the
# dead worker left it (the intermediate list), or, for a multi-queue worker, in no queue list.
# ARGV[3], when given, is the Redis time of the janitor's first look: if any janitor requeued the job
# since, the copy now in the intermediate list may be a live worker's fresh dequeue, so leave it.
_REQUEUE = """
local last = redis.call('get', KEYS[3])
if ARGV[3] ~= '' and last and tonumber(last) >= tonumber(ARGV[3]) then
    return 0
end
local removed = redis.call('lrem', KEYS[1], 1, ARGV[1])
if (removed == 1 or ARGV[2] == 'popped') and not redis.call('lpos', KEYS[2], ARGV[1]) then
    redis.call('lpush', KEYS[2], ARGV[1])
    local now = redis.call('time')
    redis.call('set', KEYS[3], now[1] .. '.' .. string.format('%06d', now[2]), 'EX', 3600)
    return 1
end
return 0
"""
REQUEUED_KEY = "rqpool:requeued:{}"


def requeue_unstarted(queue: Any, job_id: str, how: str, first_seen: str = "") -> bool:
    """``how``: 'moved' (in the intermediate list) or 'popped' (a multi-queue worker's: there, or in no list)."""
    keys = (queue.intermediate_queue_key, queue.key, REQUEUED_KEY.format(job_id))
    return bool(queue.connection.eval(_REQUEUE, 3, *keys, job_id, how, first_seen))


def requeue_stranded(queues: list[Any], job_class: Any, serializer: Any = None) -> int:
    """Jobs a dead worker moved into an intermediate list but never registered; returns how many.

    Single-queue workers move jobs there with rq's BLMOVE, multi-queue workers with the pool's
    claim (worker/dequeue.py). rq itself fails such jobs only after two maintenance passes (10
    minutes or more apart); they never ran, so they go back to the head of their queue instead. A
    job counts as stranded when two looks STRANDED_GRACE apart find it in the same state: in the
    intermediate list, unregistered, QUEUED, with the same start and enqueue times (so not run or
    requeued in between). The lists are shared with live workers, whose jobs pass that test only if
    such a worker stalls for STRANDED_GRACE between its dequeue and the job's registration.
    """

    def candidates(queue: Any) -> dict[str, tuple]:
        connection = queue.connection
        registry = StartedJobRegistry(queue.name, connection, job_class=job_class, serializer=serializer)
        found = {}
        for raw in connection.lrange(queue.intermediate_queue_key, 0, -1):
            job_id = raw.decode()
            if job_id in registry:
                continue
            fields = connection.hmget(job_class.key_for(job_id), ["status", "started_at", "enqueued_at"])
            if fields[0] == JobStatus.QUEUED.value.encode():
                found[job_id] = tuple(fields)
        return found

    seconds, micros = queues[0].connection.time()
    first_seen = f"{seconds}.{micros:06d}"
    first = {queue.name: candidates(queue) for queue in queues}
    if not any(first.values()):
        return 0
    time.sleep(STRANDED_GRACE)
    requeued = 0
    for queue in queues:
        second = candidates(queue) if first[queue.name] else {}
        for job_id, fingerprint in first[queue.name].items():
            if second.get(job_id) == fingerprint and requeue_unstarted(queue, job_id, "moved", first_seen):
                log.warning("job %s was stranded in %s by a dead worker; put back at the head", job_id, queue.name)
                requeued += 1
    return requeued


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
    killed = []
    for queue in worker.queues:
        registry = StartedJobRegistry(queue.name, connection, job_class=worker.job_class, serializer=worker.serializer)
        for job_id, execution_id in registry.get_job_and_execution_ids(cleanup=False):
            try:
                execution = Execution.fetch(execution_id, job_id, connection)
            except (NoSuchJobError, ValueError, KeyError):
                continue
            if execution_worker_name(execution) != name:
                continue
            try:
                job = worker.job_class.fetch(job_id, connection=connection, serializer=worker.serializer)
            except NoSuchJobError:
                registry.remove_execution(execution)
                continue
            status = job.get_status()
            if status == JobStatus.QUEUED:
                # Registered by the worker, but its job child never started it: it never ran. A claimed
                # job is still in the intermediate list; "popped" also covers a list that dequeued with
                # rq's BLPOP (a worker or queue class with its own dequeue, see worker/dequeue.py).
                how = "moved" if len(worker.queues) == 1 else "popped"
                if requeue_unstarted(queue, job_id, how):
                    log.warning(
                        "job %s of dead worker %s never started; put back at the head of %s", job_id, name, queue.name
                    )
                registry.remove_execution(execution)
                continue
            if status != JobStatus.STARTED:
                registry.remove_execution(execution)
                continue
            job.ended_at = now()
            worker.execution = execution
            worker.handle_job_failure(job, queue, started_job_registry=registry, exc_string=reason)
            log.warning("job %s of dead worker %s failed: %s", job_id, name, reason)
            killed.append(job)
    requeue_stranded(worker.queues, worker.job_class, worker.serializer)
    worker.register_death()
    for job in killed:  # once Redis is accounted for: the application's hooks may take their time
        report_killed_job(job, reason)  # its on_failure never ran: the worker died under it
    return len(killed)


def run_janitor(name: str, group: QueueGroup, reason: str) -> int:
    """The janitor child's body; its exit status (an error is logged with its traceback)."""
    return run_logged("janitor", _account_with_retries, name, group, reason)


def _account_with_retries(name: str, group: QueueGroup, reason: str) -> int:
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
