"""An idle worker that waits out a Redis outage, and still stops within a second when told to.

rq's dequeue loop catches ``ConnectionError`` and sleeps with exponential backoff (up to 60 s)
without looking at the stop flag, so a worker whose master died during an outage would live on,
and take one more job once Redis returned. The pool hooks the heartbeat that opens each pass of
that loop (rq 2.6.1 to 2.12 alike): while Redis is unreachable the heartbeat itself waits, with
rq's backoff, in slices that check the stop flag, and probes Redis on a connection without retries
(redis-py may retry a command for seconds); a stop there, or one already requested when a pass
begins, raises ``StopRequested`` before anything is dequeued. rq's own sleep then only follows a
failed dequeue (one second at first), and the next pass's heartbeat sees the stop.

rq's other writes outside that retry loop while the worker is idle wait the same way, as a failure
there would quit rq's loop: the heartbeat that closes a pass (each 5 s slice of an idle wait ends
with it) and the state written when a pause begins or ends (``set_state``).

A worker that stops this way does not register its death (Redis is unreachable; its key expires);
a claim it holds (a multi-queue list) makes it exit ``WORKER_LEFT_A_JOB`` for the janitor.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.connection import Connection
from redis.retry import Retry
from rq.exceptions import StopRequested

from django_rq_pool.worker.dequeue import HeldClaim
from django_rq_pool.worker.state import PoolWorkerState

STOP_POLL_SECONDS = 0.1


class RedisOutageMixin(PoolWorkerState):
    """The idle dequeue loop's heartbeats and state writes: they wait out an outage, and end the pass on a stop."""

    _pool_dequeued = False  # this pass of rq's loop holds a job: its closing heartbeat keeps rq's rules
    _pool_redis_down = False  # the last heartbeat failed: probe before trying the worker's connection
    _pool_redis_unreachable = False  # stopped during an outage: the teardown skips Redis

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        if not self._pool_dequeueing or self._pool_dequeued or timeout is not None or pipeline is not None:
            return super().heartbeat(timeout, pipeline)
        self._pool_outlast_outage(super().heartbeat)

    def set_state(self, state: str, pipeline: Any = None) -> None:
        """rq's ``set_state(IDLE)`` opens its dequeue outside its retry loop, as does the pause's SUSPENDED.

        The pool writes them only after a pause (heartbeats.py skips a state already written): a
        pause or a CONT during an outage waits it out here instead of quitting rq's loop.
        """
        if not self._pool_dequeueing or self._pool_dequeued or pipeline is not None:
            return super().set_state(state, pipeline)
        self._pool_outlast_outage(lambda: super(RedisOutageMixin, self).set_state(state))

    def _pool_outlast_outage(self, write: Callable[[], None]) -> None:
        """``write`` once Redis takes it, waiting with rq's backoff; StopRequested on a stop, before or during."""
        delay = 1.0
        while True:
            error = self._pool_probe() if self._stop_requested or self._pool_redis_down else None
            if error is None:
                try:
                    write()
                    self._pool_redis_down = False
                except redis.ConnectionError as exc:
                    self._pool_redis_down, error = True, exc
            if error is not None:
                self._pool_wait_for_redis(error, delay)
                delay = min(delay * self.exponential_backoff_factor, self.max_connection_wait_time)
                continue
            if self._stop_requested:
                raise StopRequested  # a pass of rq's loop that begins after a stop dequeues nothing
            return

    def _pool_probe(self) -> redis.RedisError | None:
        """PING on a connection of its own, with no retries and 1 s timeouts: None if Redis answers.

        The worker's own connection may retry a command for seconds (redis-py 8: ten tries), during
        which a stop would go unseen.
        """
        pool = self.connection.connection_pool
        kwargs = {key: value for key, value in pool.connection_kwargs.items() if not key.startswith("maint_")}
        kwargs.update(retry=Retry(NoBackoff(), 0), socket_timeout=1, protocol=2)
        if issubclass(pool.connection_class, Connection):  # TCP or TLS; a Unix socket has no connect timeout
            kwargs["socket_connect_timeout"] = 1
        probe = pool.connection_class(**kwargs)
        try:
            probe.connect()
            probe.send_command("PING")
            probe.read_response()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            return exc
        finally:
            probe.disconnect()
        return None

    def _pool_wait_for_redis(self, error: redis.RedisError, delay: float) -> None:
        """Sleep ``delay`` seconds in short slices; raise StopRequested as soon as a stop is requested."""
        if not self._stop_requested:
            self.log.error("Worker %s: could not connect to Redis: %s; retrying in %d s", self.name, error, delay)
            self.procline(f"Redis unreachable, retrying in {delay:.0f}s")
        deadline = time.monotonic() + delay
        while not self._stop_requested and time.monotonic() < deadline:
            time.sleep(STOP_POLL_SECONDS)
        if self._stop_requested:
            self._pool_stop_unreachable(error)

    def _pool_stop_unreachable(self, error: redis.RedisError) -> None:
        self._pool_redis_unreachable = True
        left = HeldClaim.job_id()
        self.log.warning(
            "Worker %s (pid %d, queues %s): stopping while Redis is unreachable (%s)%s",
            self.name,
            os.getpid(),
            ",".join(self.queue_names()),
            error,
            f"; job {left} stays in its intermediate list for the janitor" if left else "",
        )
        raise StopRequested

    def reorder_queues(self, reference_queue: Any) -> None:
        """rq calls this as soon as a pass has dequeued a job, before the pass's closing heartbeat."""
        self._pool_dequeued = True
        super().reorder_queues(reference_queue)

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> Any:
        self._pool_dequeued = False
        try:
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        finally:
            self._pool_dequeued = False

    def teardown(self) -> None:
        """rq's teardown registers the death in Redis; during an outage only the scheduler is stopped."""
        if not self._pool_redis_unreachable:
            super().teardown()
        elif self.scheduler:
            self.stop_scheduler()
