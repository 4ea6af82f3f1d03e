"""The control child: the only process of a pool that talks to Redis for the control plane.

Forked and supervised by the master (see master/control_link.py). It keeps a picture of the
pool from the master's messages (state.py), writes the pool's record to Redis within
``FLUSH_DELAY`` of a change and every ``heartbeat`` seconds otherwise, listens on the pool's
pub/sub channel for commands, checks them and hands them to the master, and pushes the master's
reply back to the sender. While Redis is unreachable it keeps reading the master's messages and
retries every second; the record catches up on the first write that succeeds.

At idle it sends two Redis commands per heartbeat: one script that reads every worker's rq
hash, and one that writes the record with its TTL and its id in the set of pools.
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
from django_rq_pool.control.autoscale.memory import rollup
from django_rq_pool.control.commands import CommandError
from django_rq_pool.control.protocol import TO_CHILD, Closed, ProtocolError, encode, receive
from django_rq_pool.control.state import Details, PoolView

log = logging.getLogger(__name__)

CLIENT_NAME = "rqpool-control"  # its connections in CLIENT LIST
USS_EVERY = 10.0  # reading smaps_rollup costs the kernel ~0.5 ms per worker
FLUSH_DELAY = 0.1  # a burst of changes becomes one write
RETRY = 1.0
REDIS_ERRORS = (redis.RedisError, OSError)
WRITE_RECORD = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return 1
"""  # one command, so the record and its index entry are never written apart
READ_WORKERS = """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('HMGET', key, 'state', 'current_job', 'successful_job_count', 'failed_job_count')
end
return out
"""


def _text(value: bytes | None) -> str | None:
    return value.decode() if value else None


def _uss(pid: int) -> int | None:
    """Private_Clean + Private_Dirty from smaps_rollup: one small read, unlike a walk of smaps."""
    figures = rollup(pid)
    return figures.get("Private_Clean", 0) + figures.get("Private_Dirty", 0) if figures else None


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
        self.details: dict[int, Details] = {}
        self.next_beat = 0.0
        self.next_uss = 0.0
        self.flush_at: float | None = None
        self.retry_at = 0.0
        self.loaded = False  # the stored overrides were read and handed to the master
        self.persisted: dict[str, Any] | None = None
        self.pending: dict[str, str] = {}  # command id -> reply list
        self.outbox: list[tuple[str, bytes]] = []
        self.down_since: float | None = None
        self.autoscaler = autoscaler

    @property
    def pool_id(self) -> str:
        return str(self.view.pool.get("id", ""))

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> int:
        while True:
            fds: list[Any] = [self.sock]
            if self.pubsub is not None and self.pubsub.connection is not None:
                fds.append(self.pubsub.connection._sock)
            try:
                readable, _, _ = select.select([fd for fd in fds if fd is not None], [], [], self._timeout())
            except InterruptedError:
                continue
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
            self.details.pop(message["pid"], None)
        self.view.apply(message)
        if message["t"] == "reply":
            reply_to = self.pending.pop(str(message.get("id")), None)
            if reply_to is not None:
                self._reply(reply_to, str(message["id"]), bool(message["ok"]), message["message"], message["changes"])
        if self.flush_at is None:
            self.flush_at = time.monotonic() + FLUSH_DELAY

    def _exit_reason(self, message: dict[str, Any]) -> str:
        details = self.details.get(message["pid"])
        return self.view.exit_reason(message, details, details.uss if details else None)

    def _reply(self, reply_to: str, command_id: str, ok: bool, text: str, changes: dict[str, Any]) -> None:
        self.outbox.append((reply_to, wire.encode_reply(self.pool_id, command_id, ok, text, changes)))

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
            self.pubsub.subscribe(wire.channel(self.pool_id))
            if self.down_since is not None:
                log.info("control: Redis reachable again after %.0fs", now - self.down_since)
                self.down_since = None
                if self.loaded:
                    self.persisted = {}  # store every override again: a restarted Redis may have lost them
            self.next_beat = now  # catch up at once
        if self.view.gap:
            self._to_master({"t": "resync"})
            self.view.gap = False
        if not self.loaded:
            self._load_overrides()
        while self.outbox:
            reply_to, data = self.outbox[0]
            pipe = self.redis.pipeline(transaction=False)
            pipe.rpush(reply_to, data)
            pipe.expire(reply_to, wire.REPLY_TTL)
            pipe.execute()
            self.outbox.pop(0)
        if self.loaded:
            self._persist_overrides()
        if now >= self.next_beat:
            self.read_details()
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
        uss = {pid: details.uss for pid, details in self.details.items()}
        for message in self.autoscaler.run(self.view, self.worker_connection, self.redis, uss.get):
            self._to_master(message)

    def _load_overrides(self) -> None:
        assert self.redis is not None
        stored = self.redis.hgetall(wire.overrides_key(str(self.view.pool["name"])))
        overrides = {}
        for key, value in stored.items():
            try:
                item = json.loads(value)
                overrides[wire.text(key)] = {"count": int(item["count"]), "configured": int(item["configured"])}
            except (ValueError, KeyError, TypeError):
                log.warning("control: ignoring a malformed stored override for %r", key[:80])
        self._to_master({"t": "overrides", "overrides": overrides})
        self.loaded = True
        self.persisted = overrides

    def _persist_overrides(self) -> None:
        """Store what changed in the master's overrides (retried after an outage).

        Field by field, so pools sharing a name (a hot swap) do not erase each other's lists.
        """
        assert self.redis is not None
        current = self.view.overrides()
        previous = self.persisted or {}
        if current == previous and self.persisted is not None:
            return
        key = wire.overrides_key(str(self.view.pool["name"]))
        pipe = self.redis.pipeline(transaction=True)
        for name, item in current.items():
            if previous.get(name) != item:
                pipe.hset(key, name, json.dumps(item))
        gone = [name for name in previous if name not in current]
        if gone:
            pipe.hdel(key, *gone)
        pipe.execute()
        self.persisted = current

    def write_record(self) -> None:
        assert self.redis is not None
        document = self.view.document(self.details, time.time())
        ttl = max(1, round(self.heartbeat * 3))
        script = self.redis.register_script(WRITE_RECORD)
        script(keys=[wire.record_key(self.pool_id), wire.POOLS], args=[json.dumps(document), ttl, self.pool_id])
        self.flush_at = None

    def read_details(self, pids: list[int] | None = None) -> None:
        """rq's state, current job and job counts (one script per Redis), and USS from /proc."""
        by_list: dict[str, list[int]] = {}
        for pid, worker in self.view.workers.items():
            if pids is None or pid in pids:
                by_list.setdefault(worker["list"], []).append(pid)
        by_connection: dict[int, tuple[redis.Redis, list[int]]] = {}
        for key, members in by_list.items():
            connection = self.worker_connection(key.split(",")[0])
            by_connection.setdefault(id(connection), (connection, []))[1].extend(members)
        for connection, members in by_connection.values():
            script = connection.register_script(READ_WORKERS)
            rows = script(keys=[f"rq:worker:{self.view.workers[pid]['name']}" for pid in members])
            for pid, (state, job, done, failed) in zip(members, rows, strict=True):
                uss = self.details[pid].uss if pid in self.details else None
                self.details[pid] = Details(_text(state), _text(job), int(done or 0) + int(failed or 0), uss)
        if pids is not None:
            return
        now = time.monotonic()
        if now >= self.next_uss or any(d.uss is None for d in self.details.values()):
            self.next_uss = now + USS_EVERY
            for pid, details in self.details.items():
                details.uss = _uss(pid)
        for pid in list(self.details):
            if pid not in self.view.workers:
                del self.details[pid]

    # -- commands ------------------------------------------------------------------------

    def read_commands(self) -> None:
        while self.pubsub is not None:
            message = self.pubsub.get_message(timeout=0)
            if message is None:
                return
            if message.get("type") != "message":
                continue
            self.command(message["data"])

    def command(self, raw: Any) -> None:
        try:
            parsed = wire.parse_command(raw)
        except CommandError as exc:
            self.view.commands["refused"] += 1
            log.warning("control: refused a message on %s: %s", wire.channel(self.pool_id), exc)
            if exc.reply_to:
                self._reply(exc.reply_to, exc.command_id or "", False, f"refused: {exc}", {})
            self.flush_at = time.monotonic()
            return
        args = dict(parsed.args)
        if parsed.command == "scale":
            args["prefer"] = self._idle_pids(args["list"])
        log.info("control: command %s %s from Redis", parsed.command, _shown_args(args))
        if self._to_master({"t": "command", "id": parsed.id, "command": parsed.command, "args": args}):
            self.pending[parsed.id] = parsed.reply_to
        else:
            self._reply(parsed.reply_to, parsed.id, False, "refused: the master is not reading its control pipe", {})

    def _idle_pids(self, key: str) -> list[int]:
        """This list's idle workers (read now), so a scale-down retires them first."""
        pids = [pid for pid, worker in self.view.workers.items() if worker["list"] == key]
        if pids:
            self.read_details(pids)
        return [pid for pid in pids if self.details.get(pid, Details()).state == "idle"]

    def _to_master(self, message: dict[str, Any]) -> bool:
        try:
            self.sock.send(encode(message))
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
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
            self.redis_work_outbox()
            self.redis.delete(wire.record_key(self.pool_id))
            self.redis.srem(wire.POOLS, self.pool_id)
            log.info("control: pool %s removed from the registry", self.pool_id)
        except REDIS_ERRORS as exc:
            log.warning("control: could not remove the record (%s); it expires by itself", redact_text(str(exc)))

    def redis_work_outbox(self) -> None:
        assert self.redis is not None
        for reply_to, data in self.outbox:
            self.redis.rpush(reply_to, data)
            self.redis.expire(reply_to, wire.REPLY_TTL)
        self.outbox.clear()


def _shown_args(args: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in args.items() if k != "prefer")


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
