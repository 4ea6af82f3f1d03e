"""Dequeueing for a multi-queue list that keeps every job in a Redis list the janitor reads.

rq dequeues for a single queue with BLMOVE into that queue's intermediate list
(``rq:queue:<name>:intermediate``), so a job is always in a list or registered as started. For
several queues it uses BLPOP, which hands the job over with no trace in Redis until the worker
registers it: a worker killed in between (fetch, ``prepare_execution``) loses the job for good.

A multi-queue worker of the pool claims instead:

1. a Lua script takes the head of the first non-empty queue, in the worker's order (priority,
   round robin or random, as rq's ``dequeue_strategy`` left it), and appends it to that queue's
   intermediate list, atomically: no window at all. A busy pool takes nearly every job this way;
2. only when every queue is empty does the worker wait, without popping: a doorbell (doorbell.py,
   Redis's broadcast client tracking on the queue keys) rings on every write to its queues, and the
   worker runs the claim script again; the wait ends at the dequeue slice's timeout (DequeueTimeout,
   as rq's) or at once on a warm stop or pause. The claim script stays the only pop: no window.
   Where Redis refuses CLIENT TRACKING, the worker waits in rq's own BLPOP instead and pushes the job
   it returns into its queue's intermediate list with the very next command; that job is in no list
   only for that round trip, the residual window (measured in docs/reliability.md).

The job child takes the job out of the intermediate list in the transaction that marks it started,
as rq does for a single queue; the janitor puts back a job a dead worker left there.

A claim stays this worker's until it runs the job: if an error (a Redis outage, a lost reply) makes
rq drop the dequeued job and dequeue again, the next dequeue returns the same claim instead of
taking another job, and a worker that quits holding one exits non-zero so that the janitor puts it
back (worker/entry.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

import rq.worker
from redis import Redis
from redis.commands.core import Script
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq.exceptions import DequeueTimeout, NoSuchJobError
from rq.queue import Queue
from rq.utils import as_text

from django_rq_pool.worker.base import WorkerBase
from django_rq_pool.worker.doorbell import Doorbell, doorbell_for, drop_doorbell, listening_doorbell

log = logging.getLogger(__name__)

# KEYS: the queues in dequeue order, then their intermediate lists in the same order.
_CLAIM = """
local count = #KEYS / 2
for i = 1, count do
    local job_id = redis.call('lpop', KEYS[i])
    if job_id then
        redis.call('rpush', KEYS[count + i], job_id)
        return {i - 1, job_id}
    end
end
return false
"""
_claim_script = Script(None, _CLAIM.encode())  # type: ignore[arg-type]  # each call names its client

# KEYS: the intermediate list. Idempotent: a push whose reply was lost and is sent again adds no copy.
_PUSH_ONCE = """
if not redis.call('lpos', KEYS[1], ARGV[1]) then
    redis.call('rpush', KEYS[1], ARGV[1])
end
"""
_push_once_script = Script(None, _PUSH_ONCE.encode())  # type: ignore[arg-type]


class HeldClaim:
    """The claim this process made and has not run yet: ``(queue key, job id, in its intermediate list)``.

    One worker per process, so one slot. Set as soon as Redis hands a job over, cleared when the
    worker starts executing it (or puts it back while paused).
    """

    claim: tuple[str, str, bool] | None = None

    @classmethod
    def job_id(cls) -> str | None:
        return None if cls.claim is None else cls.claim[1]

    @classmethod
    def release(cls) -> None:
        cls.claim = None


def claim_first(connection: Redis, queues: Sequence[Queue]) -> tuple[Queue, str] | None:
    """Move the first job in dequeue order into its queue's intermediate list, atomically."""
    keys = [queue.key for queue in queues] + [queue.intermediate_queue_key for queue in queues]
    found = _claim_script(keys=keys, client=connection)
    if not found:
        return None
    index, job_id = found
    return queues[int(index)], as_text(job_id)


def wait_and_claim(
    connection: Redis, queues: Sequence[Queue], timeout: int, listening: Doorbell | None = None
) -> tuple[Queue, str]:
    """Wait for a write to the queues, then claim atomically; BLPOP where Redis refuses the doorbell.

    ``listening``: the doorbell that was already set up when the caller's claim found the queues
    empty. If it is still the one serving them, every write since that claim has rung it, so the
    wait begins without claiming again; a doorbell set up now claims first, as a write may have
    landed before its tracking began. Raises DequeueTimeout, as rq's ``Queue.lpop`` does, when
    nothing came within ``timeout``.
    """
    if timeout == 0:
        raise ValueError("RQ does not support indefinite timeouts. Please pick a timeout value > 0")
    doorbell = doorbell_for(connection, [queue.key for queue in queues])
    if doorbell is None:
        return blpop_and_claim(connection, queues, timeout)
    deadline = time.monotonic() + timeout
    claim_now = doorbell is not listening
    try:
        while True:
            if claim_now:
                claimed = claim_first(connection, queues)  # the doorbell is set up: no later write goes unheard
                if claimed is not None:
                    return claimed
            left = deadline - time.monotonic()
            if left <= 0 or not doorbell.wait(left):  # no ring: nothing was written since the last claim
                raise DequeueTimeout(timeout, [queue.key for queue in queues])
            claim_now = True
    except (RedisConnectionError, RedisTimeoutError):
        drop_doorbell()
        raise


def blpop_and_claim(connection: Redis, queues: Sequence[Queue], timeout: int) -> tuple[Queue, str]:
    """The fallback: block in BLPOP, then put the job in its queue's intermediate list at once."""
    keys = [queue.key for queue in queues]
    popped = connection.blpop(keys, timeout)
    if popped is None:
        raise DequeueTimeout(timeout, keys)
    queue_key, job_id = as_text(popped[0]), as_text(popped[1])
    queue = next(queue for queue in queues if queue.key == queue_key)
    HeldClaim.claim = (queue.key, job_id, False)  # if the push fails, the next dequeue pushes it again
    _push_once_script(keys=[queue.intermediate_queue_key], args=[job_id], client=connection)
    HeldClaim.claim = (queue.key, job_id, True)
    return queue, job_id


def resume_claim(connection: Redis, queues: Sequence[Queue]) -> tuple[Queue, str] | None:
    """The claim rq dropped on an error since this worker made it, if that job is still this worker's."""
    if HeldClaim.claim is None:
        return None
    queue_key, job_id, in_list = HeldClaim.claim
    queue = next((queue for queue in queues if queue.key == queue_key), None)
    if queue is None:
        HeldClaim.release()
        return None
    if not in_list:
        _push_once_script(keys=[queue.intermediate_queue_key], args=[job_id], client=connection)
        HeldClaim.claim = (queue_key, job_id, True)
    elif connection.lpos(queue.intermediate_queue_key, job_id) is None:
        HeldClaim.release()  # no longer in the list: it ran, or was put back, meanwhile
        return None
    log.warning("Resuming claim of job %s from %s, dropped on an error before it ran", job_id, queue.name)
    return queue, job_id


class ClaimingQueue(Queue):
    """Queue class whose ``dequeue_any`` claims; mixed in over the list's own queue class."""

    @classmethod
    def dequeue_any(
        cls,
        queues: Iterable[Queue],
        timeout: int | None,
        connection: Redis,
        job_class: Any = None,
        serializer: Any = None,
        death_penalty_class: Any = None,
    ) -> tuple[Any, Queue] | None:
        """rq's contract (the job and its queue, None when non-blocking and empty) with claims."""
        queues = list(queues)
        job_cls = job_class if job_class is not None else cls.job_class
        while True:
            listening = listening_doorbell()
            claimed = resume_claim(connection, queues) or claim_first(connection, queues)
            if claimed is None:
                if timeout is None:
                    return None
                claimed = wait_and_claim(connection, queues, timeout, listening)
            queue, job_id = claimed
            HeldClaim.claim = (queue.key, job_id, True)
            try:
                job = job_cls.fetch(job_id, connection=connection, serializer=serializer)
            except NoSuchJobError:
                connection.lrem(queue.intermediate_queue_key, 1, job_id)  # rq skips a job that is gone
                HeldClaim.release()
                continue
            except Exception as exc:
                if not isinstance(exc, (RedisConnectionError, RedisTimeoutError)):
                    HeldClaim.release()  # not transient (a job that cannot be read): rq's maintenance fails it
                exc.job_id = job_id  # type: ignore[attr-defined]  # as rq does, for its error report
                exc.queue = queue  # type: ignore[attr-defined]
                raise
            # A fresh queue object, as rq's dequeue_any returns.
            return job, cls.from_queue_key(
                queue.key,
                connection=connection,
                job_class=job_cls,
                serializer=serializer,
                death_penalty_class=death_penalty_class,
            )


@cache
def claiming_queue_class(queue_class: type[Queue]) -> type[Queue]:
    """The list's queue class with claiming ``dequeue_any``; one class per queue class."""
    return type(f"Claiming{queue_class.__name__}", (ClaimingQueue, queue_class), {})


def can_claim(worker: Any) -> bool:
    """Claims need rq's own dequeue and a job child that runs this process's code (not SpawnWorker)."""
    spawn_worker = getattr(rq.worker, "SpawnWorker", None)  # older rq has none
    own_dequeue = getattr(worker.queue_class.dequeue_any, "__func__", None) is Queue.__dict__["dequeue_any"].__func__
    return own_dequeue and not (spawn_worker is not None and isinstance(worker, spawn_worker))


class ClaimingWorkerMixin(WorkerBase):
    """Worker side: multi-queue lists claim (above); the job child clears the claim as it starts."""

    pool_claims = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if len(self.queues) < 2:
            return  # rq's BLMOVE already keeps a single queue's job in a list
        if can_claim(self):
            self.pool_claims = True
            self.queue_class = claiming_queue_class(self.queue_class)
        else:
            log.warning(
                "Worker %s: %s with queue class %s dequeues its own way; this multi-queue list uses it unchanged, "
                "so a worker killed just after a dequeue can lose that job",
                self.name,
                type(self).__name__,
                self.queue_class.__name__,
            )

    def execute_job(self, job: Any, queue: Any) -> None:
        """From here on the job is accounted for by its registration, or by the janitor if this fails."""
        HeldClaim.release()
        super().execute_job(job, queue)  # type: ignore[misc]

    def prepare_job_execution(self, job: Any, remove_from_intermediate_queue: bool = False) -> None:
        """In the job child: marking the job started removes it from its intermediate list, atomically."""
        super().prepare_job_execution(job, remove_from_intermediate_queue or self.pool_claims)  # type: ignore[misc]
