"""The worker's heartbeats and state writes, with fewer Redis round trips between two jobs.

Between two trivial jobs rq's worker makes 13 round trips to Redis (``bench/README.md``), most of
them writes to its own hash within a few milliseconds: ``set_state(IDLE)`` at the end of
``execute_job``, ``heartbeat()`` in ``work()`` (HSET and EXPIRE, two round trips), the heartbeat
``is_suspended`` pipelines with its EXISTS, ``set_state(IDLE)`` again and a heartbeat at the start
of ``dequeue_job_and_maintain_ttl``, and one more heartbeat after the dequeue. On a saturated
machine each round trip also waits for a CPU. This mixin sends the same writes in fewer round trips:

* a heartbeat is one pipelined round trip (rq's own ``heartbeat`` queued on a pipeline);
* a heartbeat is skipped when one with the same or a longer expiry was sent less than
  ``BEAT_SKIP_SECONDS`` ago. Skips never chain (the bound is from the last beat *sent*), so the
  worker key's ``last_heartbeat`` is at most that much older, and its expiry at most that much
  earlier, than rq would leave them. Every reader allows far more: the key lives ``worker_ttl + 60``
  seconds (76 at least in the pool), so ``rq info`` and rq's ``clean_worker_registry`` still find
  it; the pool's stuck-worker check (``common/heartbeat_rule.py``, ``helpers/heartbeat_check.py``)
  allows ``--stuck-timeout`` seconds while workers beat every quarter of it (a quarter plus 1 s stays
  within it from 2 s up);
* ``set_state`` writes nothing when this worker already wrote that state itself, and a change to
  idle carries the heartbeat rq sends right after every ``set_state(IDLE)`` in the same round trip;
* every heartbeat the worker sends while not busy also carries ``HSETNX state``, ahead of it: if
  Redis lost the hash (a restart without persistence, an expired or deleted key), the state the
  worker no longer rewrites is back with that heartbeat, and the heartbeat's EXPIRE finds the key
  whichever order the rq version sends it in; the HSETNX writes nothing while the field is there.

While the worker is busy (from the pipelined ``set_state(BUSY)`` of ``prepare_execution`` to the
``set_state(IDLE)`` that ends ``execute_job``) the job child writes the same hash, so nothing is
skipped and rq's calls go through unchanged; so do all calls in a job child.

Relies on rq's ``heartbeat(timeout, pipeline)``, ``set_state(state, pipeline)``, ``get_state()``
and the ``_state`` attribute behind it, ``is_horse``, ``worker_ttl`` and ``key``: all alike from rq
2.6.1 to 2.12 (2.6.1 sends EXPIRE before HSET; both orders are kept as rq sends them).
"""

from __future__ import annotations

import math
import time
from typing import Any

from rq.worker import WorkerStatus

from django_rq_pool.worker.base import WorkerBase

BEAT_SKIP_SECONDS = 1.0


class FewerRoundTripsMixin(WorkerBase):
    """rq's heartbeats and state writes, pipelined, the redundant ones skipped."""

    _pool_beat_at = -math.inf  # time.monotonic() when the last heartbeat was queued while not busy
    _pool_beat_ttl = 0  # the expiry it set
    _pool_state_written: str | None = None  # the state this worker last wrote, while known to be there

    def _pool_beat_fresh(self, ttl: int) -> bool:
        return time.monotonic() - self._pool_beat_at < BEAT_SKIP_SECONDS and self._pool_beat_ttl >= ttl

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        if self.is_horse or self.get_state() == WorkerStatus.BUSY:
            super().heartbeat(timeout, pipeline)
            return
        ttl = timeout or self.worker_ttl + 60
        if pipeline is not None:  # is_suspended's transaction: a failure there raises into rq's loop
            self._pool_queue_beat(pipeline, ttl, restore_state=True)
            self._pool_remember_beat(time.monotonic(), ttl)
        elif not self._pool_beat_fresh(ttl):
            at = time.monotonic()
            with self.connection.pipeline(transaction=False) as pipe:
                self._pool_queue_beat(pipe, ttl, restore_state=True)
                pipe.execute()
            self._pool_remember_beat(at, ttl)

    def _pool_queue_beat(self, pipeline: Any, ttl: int, restore_state: bool) -> None:
        # HSETNX first: a hash Redis lost exists again before the heartbeat's EXPIRE, which rq 2.6
        # sends before its HSET (an EXPIRE of a missing key does nothing, leaving the key without one).
        if restore_state and self._pool_state_written is not None:
            pipeline.hsetnx(self.key, "state", self._pool_state_written)
        super().heartbeat(ttl, pipeline)

    def _pool_remember_beat(self, at: float, ttl: int) -> None:
        self._pool_beat_at = at
        self._pool_beat_ttl = ttl

    def set_state(self, state: str, pipeline: Any = None) -> None:
        if self.is_horse or pipeline is not None or state == WorkerStatus.BUSY:
            self._pool_state_written = None
            self._pool_beat_at = -math.inf
            super().set_state(state, pipeline)
            return
        if state == self._pool_state_written:
            self._state = state
            return
        ttl = self.worker_ttl + 60
        beats = state == WorkerStatus.IDLE and not self._pool_beat_fresh(ttl)  # rq beats right after
        at = time.monotonic()
        with self.connection.pipeline(transaction=False) as pipe:
            super().set_state(state, pipe)
            if beats:
                self._pool_queue_beat(pipe, ttl, restore_state=False)
            pipe.execute()
        self._pool_state_written = state
        if beats:
            self._pool_remember_beat(at, ttl)
