"""The control child: the only process of a pool that talks to Redis for the control plane.

Forked and supervised by the master (see master/control_link.py). It keeps a picture of the
pool from the master's messages (state.py), writes the pool's record to Redis within
``FLUSH_DELAY`` of a change and every ``heartbeat`` seconds otherwise, listens on the pool's
pub/sub channel for commands, checks them and hands them to the master, and pushes the master's
reply back to the sender (command_intake.py). While Redis is unreachable it keeps reading the
master's messages and retries every second; the record catches up on the first write that succeeds.

At idle it sends two Redis commands per heartbeat: one script that reads every worker's rq
hash (worker_details.py), and one that writes the record with its TTL and its id in the set of pools.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import socket
import time
from collections.abc import Callable
from typing import Any

import redis

from django_rq_pool.common.child import run_logged
from django_rq_pool.config.redact import redact_text
from django_rq_pool.control import wire
from django_rq_pool.control.autoscale.loop import Autoscaler
from django_rq_pool.control.command_intake import CommandIntake
from django_rq_pool.control.protocol import TO_CHILD, Closed, ProtocolError, encode, receive
from django_rq_pool.control.state import PoolView
from django_rq_pool.control.stored_overrides import StoredOverrides
from django_rq_pool.control.worker_details import WorkerDetails

log = logging.getLogger(__name__)

CLIENT_NAME = "rqpool-control"  # its connections in CLIENT LIST
FLUSH_DELAY = 0.1  # a burst of changes becomes one write
RETRY = 1.0
REDIS_ERRORS = (redis.RedisError, OSError)
WRITE_RECORD = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return 1
"""  # one command, so the record and its index entry are never written apart


class ControlChild:
    """One run of the control child; :meth:`run` returns its exit status."""

    def __init__(
        self,
        sock: socket.socket,
        connect: Callable[[], redis.Redis],
        worker_connection: Callable[[str], redis.Redis],
        heartbeat: float,
        autoscaler: Autoscaler | None = None,
    ):
        self.sock = sock
        self.connect = connect
        self.worker_connection = worker_connection  # the Redis a queue list's workers register in
        self.heartbeat = heartbeat
        self.view = PoolView()
        self.redis: redis.Redis | None = None
        self.pubsub: Any = None
        self.workers = WorkerDetails(worker_connection)
        self.overrides = StoredOverrides()
        self.commands = CommandIntake(self.view, self.workers, self._to_master)
        self.next_beat = 0.0
        self.flush_at: float | None = None
        self.retry_at = 0.0
        self.down_since: float | None = None
        self.autoscaler = autoscaler

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> int:
        while True:
            fds: list[Any] = [self.sock]
            if self.pubsub is not None and self.pubsub.connection is not None:
                fds.append(self.pubsub.connection._sock)
            if self.autoscaler is not None:
                fds += self.autoscaler.sockets()  # its waits on quiet queues (autoscale/waker.py)
            try:
                readable, _, _ = select.select([fd for fd in fds if fd is not None], [], [], self._timeout())
            except InterruptedError:
                continue
            if self.autoscaler is not None:
                self.autoscaler.woken(readable)
            if self.sock in readable:
                try:
                    messages = receive(self.sock, TO_CHILD)
                except Closed:
                    self.finish()
                    return 0
                for message in messages:
                    self.take(message)
            self.guarded(self.redis_work)
            if self.pubsub is not None:  # also what arrived with the SUBSCRIBE reply, already buffered
                self.guarded(self.read_commands)

    def _timeout(self) -> float:
        now = time.monotonic()
        if not self.view.pool:
            return 1.0  # waiting for the first snapshot
        due = [self.next_beat if self.redis is not None else self.retry_at]
        if self.flush_at is not None and self.redis is not None:
            due.append(self.flush_at)
        scaling = self.autoscaler.due(self.view) if self.autoscaler is not None and self.redis is not None else None
        if scaling is not None:
            due.append(scaling)
        return max(0.0, min(due) - now)

    def take(self, message: dict[str, Any] | ProtocolError) -> None:
        if isinstance(message, ProtocolError):
            log.error("control: bad message from the master ignored: %s", message)
            return
        if message["t"] == "exit":
            message = {**message, "reason": self._exit_reason(message)}
            self.workers.by_pid.pop(message["pid"], None)
        self.view.apply(message)
        if message["t"] == "reply":
            self.commands.answered(message)
        if self.flush_at is None:
            self.flush_at = time.monotonic() + FLUSH_DELAY

    def _exit_reason(self, message: dict[str, Any]) -> str:
        details = self.workers.by_pid.get(message["pid"])
        return self.view.exit_reason(message, details, details.uss if details else None)

    def guarded(self, work: Callable[[], None]) -> None:
        """Run Redis work; an outage closes the connection and schedules a retry, never a crash."""
        try:
            work()
        except REDIS_ERRORS as exc:
            if self.down_since is None:
                self.down_since = time.monotonic()
                log.warning(
                    "control: Redis unreachable (%s); the pool runs on, retrying every %.0fs",
                    redact_text(str(exc)),
                    RETRY,
                )
            self.disconnect()
            self.retry_at = time.monotonic() + RETRY

    def disconnect(self) -> None:
        if self.pubsub is not None:
            with contextlib.suppress(*REDIS_ERRORS):
                self.pubsub.close()
        if self.redis is not None:
            self.redis.connection_pool.disconnect()
        self.redis, self.pubsub = None, None

    # -- Redis ---------------------------------------------------------------------------

    def redis_work(self) -> None:
        if not self.view.pool:
            return
        now = time.monotonic()
        if self.redis is None:
            if now < self.retry_at:
                return
            self.redis = self.connect()
            self.redis.ping()
            self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            self.pubsub.subscribe(wire.channel(self.view.pool_id))
            if self.down_since is not None:
                log.info("control: Redis reachable again after %.0fs", now - self.down_since)
                self.down_since = None
                self.overrides.reconnected()
            self.next_beat = now  # catch up at once
        if self.view.gap:
            self._to_master({"t": "resync"})
            self.view.gap = False
        pool_name = str(self.view.pool["name"])
        if not self.overrides.loaded:
            self._to_master({"t": "overrides", "overrides": self.overrides.load(self.redis, pool_name)})
        self.commands.deliver(self.redis)
        if self.overrides.loaded:
            self.overrides.persist(self.redis, pool_name, self.view.overrides())
        if now >= self.next_beat:
            self.workers.read(self.view)
            self.write_record()
            self.next_beat = time.monotonic() + self.heartbeat
        elif self.flush_at is not None and now >= self.flush_at:
            self.write_record()
        self.autoscale(now)

    def autoscale(self, now: float) -> None:
        """One round of the autoscaler when it is due; its counts go to the master like commands."""
        due = self.autoscaler.due(self.view) if self.autoscaler is not None else None
        if due is None or now < due or self.redis is None:
            return
        assert self.autoscaler is not None
        uss = {pid: details.uss for pid, details in self.workers.by_pid.items()}
        for message in self.autoscaler.run(self.view, self.worker_connection, self.redis, uss.get):
            self._to_master(message)

    def write_record(self) -> None:
        assert self.redis is not None
        document = self.view.document(self.workers.by_pid, time.time())
        ttl = max(1, round(self.heartbeat * 3))
        script = self.redis.register_script(WRITE_RECORD)
        pool_id = self.view.pool_id
        script(keys=[wire.record_key(pool_id), wire.POOLS], args=[json.dumps(document), ttl, pool_id])
        self.flush_at = None

    def read_commands(self) -> None:
        if self.commands.read(self.pubsub):
            self.flush_at = time.monotonic()

    def _to_master(self, message: dict[str, Any]) -> bool:
        try:
            self.sock.send(encode(message))
        except OSError:  # a full pipe (BlockingIOError) included: the master is not reading
            return False
        return True

    # -- the end -------------------------------------------------------------------------

    def finish(self) -> None:
        """The master closed its end (it stopped, or died): deliver replies, drop the record."""
        if not self.view.pool:
            return
        try:
            if self.redis is None:
                self.redis = self.connect()
            self.commands.deliver(self.redis)
            self.redis.delete(wire.record_key(self.view.pool_id))
            self.redis.srem(wire.POOLS, self.view.pool_id)
            log.info("control: pool %s removed from the registry", self.view.pool_id)
        except REDIS_ERRORS as exc:
            log.warning("control: could not remove the record (%s); it expires by itself", redact_text(str(exc)))


def run_control_child(sock: socket.socket, heartbeat: float, max_memory: int | None = None) -> int:
    """The control child's body, in the forked process (Django is set up); an error is logged with its traceback."""
    return run_logged("control child", _serve, sock, heartbeat, max_memory)


def _serve(sock: socket.socket, heartbeat: float, max_memory: int | None) -> int:
    import django_rq

    from django_rq_pool.control.client import read_status, registry_connection, with_timeouts

    connections: dict[str, redis.Redis] = {}

    def worker_connection(queue: str) -> redis.Redis:
        from django.conf import settings
        from django_rq.connection_utils import filter_connection_params

        params = repr(sorted(filter_connection_params(settings.RQ_QUEUES[queue]).items()))
        if params not in connections:
            connections[params] = with_timeouts(django_rq.get_connection(queue), name=CLIENT_NAME)
        return connections[params]

    def connect() -> redis.Redis:
        return with_timeouts(registry_connection(), name=CLIENT_NAME)

    log.info("control child %d started", os.getpid())
    autoscaler = Autoscaler(max_memory, read_status)
    return ControlChild(sock, connect, worker_connection, heartbeat, autoscaler).run()
