"""The worker's dequeue: sliced so that a stop is seen, held while paused, announced once.

A blocking dequeue that a warm stop or a pause ends with CLIENT UNBLOCK (see unblock.py) raises
a ResponseError here, never inside rq's bookkeeping; a job that arrives during a pause goes back.
"""

from __future__ import annotations

import math
import time
from typing import Any

import redis
from rq.exceptions import StopRequested
from rq.worker import WorkerStatus

from django_rq_pool.common.listening_pipe import announce
from django_rq_pool.worker.dequeue import HeldClaim
from django_rq_pool.worker.state import PoolWorkerState
from django_rq_pool.worker.unblock import is_unblock_error

STOP_CHECK_SECONDS = 5
PAUSE_POLL_SECONDS = 0.05


class PausedDequeueMixin(PoolWorkerState):
    """rq's dequeue in slices of STOP_CHECK_SECONDS, waiting while paused."""

    def _pool_wait_while_paused(self) -> None:
        """Report SUSPENDED while paused; notice CONT within PAUSE_POLL_SECONDS, heartbeat every second."""
        if not self._pool_paused or self._stop_requested:
            return
        self.set_state(WorkerStatus.SUSPENDED)
        self.procline("Paused (USR2), CONT resumes")
        last_beat = 0.0
        while self._pool_paused and not self._stop_requested:
            if time.monotonic() - last_beat >= 1:
                self.heartbeat()
                last_beat = time.monotonic()
            time.sleep(PAUSE_POLL_SECONDS)

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> Any:
        """rq's dequeue, marked: a warm stop's CLIENT UNBLOCK may only end a blocking call made here."""
        self._pool_dequeueing = True
        try:
            return self._pool_dequeue(timeout, max_idle_time)
        finally:
            self._pool_dequeueing = False

    def _pool_dequeue(self, timeout: int | None, max_idle_time: int | None) -> Any:
        """Wait while paused; a job that arrives during a pause goes back to the head of its queue.

        A blocking wait lasts at most STOP_CHECK_SECONDS before the stop flag is checked again: a
        warm stop that lands just before the blocking command reaches Redis finds nothing for
        CLIENT UNBLOCK to end, and would otherwise wait out rq's whole dequeue timeout.
        """
        self._pool_record_lineage(0)  # the scheduler may have started (or restarted) since the last job
        if self.pool_listening_fd >= 0:
            announce(self.pool_listening_fd)  # registered, about to dequeue for the first time
            self.pool_listening_fd = -1
        idle_since = time.monotonic()
        while True:
            self._pool_wait_while_paused()
            if self._stop_requested:
                raise StopRequested
            slice_limit = max_idle_time
            if timeout is not None:
                left = STOP_CHECK_SECONDS if max_idle_time is None else max_idle_time - (time.monotonic() - idle_since)
                slice_limit = max(1, math.ceil(min(left, STOP_CHECK_SECONDS)))
            try:
                result = super().dequeue_job_and_maintain_ttl(timeout, slice_limit)
            except redis.ResponseError as exc:
                if not is_unblock_error(exc):
                    raise
                if self._stop_requested:
                    raise StopRequested from None  # the warm stop ended the wait; nothing was dequeued
                continue  # a pause ended the wait (nothing was dequeued): report it, or wait again
            if result is None:
                if timeout is None or (max_idle_time is not None and time.monotonic() - idle_since >= max_idle_time):
                    return None  # burst: the queues are empty; or idle for max_idle_time
                continue  # only a slice ended: check the stop flag, wait again
            job, queue = result
            self._pool_job_in_hand = job.id
            if not self._pool_paused:
                return result
            with self.connection.pipeline() as pipe:
                pipe.lrem(queue.intermediate_queue_key, 1, job.id)
                pipe.lpush(queue.key, job.id)
                pipe.execute()
            self._pool_job_in_hand = None
            HeldClaim.release()
            self.log.info("Worker %s: paused; job %s put back at the head of %s", self.name, job.id, queue.name)
