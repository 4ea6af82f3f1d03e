"""The control plane's client API: read the registry, send commands, read backlogs.

Every client (``rqpoolctl``, the admin page, the JSON API, the metrics) goes through these
functions and holds no Redis logic of its own. The document is described in docs/control.md.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import redis

from django_rq_pool.control import wire
from django_rq_pool.control.commands import check_command

DEFAULT_CONTROL_QUEUE = "default"
SOCKET_TIMEOUT = 2.0


class UnknownPool(ValueError):
    """No live pool has this id or name."""


@dataclass
class Reply:
    """One pool's answer to a command."""

    pool_id: str
    ok: bool
    message: str
    changes: dict = field(default_factory=dict)
    timed_out: bool = False


def control_queue_name() -> str:
    """The ``RQ_QUEUES`` entry whose Redis holds the registry."""
    from django.conf import settings

    return getattr(settings, "RQ_POOL_CONTROL_QUEUE", None) or DEFAULT_CONTROL_QUEUE


def with_timeouts(connection: redis.Redis, seconds: float = SOCKET_TIMEOUT, name: str | None = None) -> redis.Redis:
    """Give a connection socket timeouts where it has none, so a dead Redis never hangs a caller."""
    kwargs = connection.connection_pool.connection_kwargs
    if name is not None:
        kwargs["client_name"] = name  # shown by CLIENT LIST
    for name in ("socket_timeout", "socket_connect_timeout"):
        if kwargs.get(name) is None:
            kwargs[name] = seconds
    return connection


def registry_connection() -> redis.Redis:
    """django-rq's connection of ``RQ_QUEUES["default"]``, or of ``settings.RQ_POOL_CONTROL_QUEUE``."""
    import django_rq

    return with_timeouts(django_rq.get_connection(control_queue_name()))


def _decode(value: bytes | str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        document = json.loads(value)
    except ValueError:
        return None
    return document if isinstance(document, dict) and "id" in document else None


def read_status(connection: redis.Redis | None = None) -> dict[str, Any]:
    """Every live pool: ``{"generated_at": epoch, "pools": [...]}``, sorted by host then name."""
    connection = connection or registry_connection()
    ids = sorted(wire.text(member) for member in connection.smembers(wire.POOLS))
    records = connection.mget([wire.record_key(pool_id) for pool_id in ids]) if ids else []
    pools, gone = [], []
    for pool_id, value in zip(ids, records, strict=True):
        document = _decode(value)
        if document is None:
            gone.append(pool_id)
        else:
            pools.append(document)
    if gone:
        connection.srem(wire.POOLS, *gone)  # expired: the TTL removed the record, the set keeps the id
    pools.sort(key=lambda pool: (str(pool.get("host")), str(pool.get("name")), str(pool.get("id"))))
    return {"generated_at": time.time(), "pools": pools}


def backlog(queues: list[str], connection: redis.Redis | None = None) -> dict[str, dict[str, Any]]:
    """``{queue: {"count": queued jobs, "oldest_age": seconds or None}}``."""
    from rq.utils import utcparse

    connection = connection or registry_connection()
    pipe = connection.pipeline(transaction=False)
    for name in queues:
        pipe.llen(f"rq:queue:{name}")
        pipe.lindex(f"rq:queue:{name}", 0)
    answers = pipe.execute()
    oldest_ids = [answers[i * 2 + 1] for i in range(len(queues))]
    pipe = connection.pipeline(transaction=False)
    for job_id in oldest_ids:
        pipe.hget(f"rq:job:{wire.text(job_id)}", "enqueued_at") if job_id else pipe.echo("")
    enqueued = pipe.execute()
    now = time.time()
    found: dict[str, dict[str, Any]] = {}
    for index, name in enumerate(queues):
        age = None
        if oldest_ids[index] and enqueued[index]:
            try:
                age = max(0.0, now - utcparse(wire.text(enqueued[index])).timestamp())
            except ValueError:
                age = None
        found[name] = {"count": answers[index * 2], "oldest_age": age}
    return found


def _targets(status: dict[str, Any], pool: str | None, all_pools: bool) -> list[str]:
    if (pool is None) == (not all_pools):
        raise ValueError("give exactly one of pool or all_pools")
    pools = status["pools"]
    if all_pools:
        ids = [p["id"] for p in pools]
        if not ids:
            raise UnknownPool("no live pool is registered")
        return ids
    ids = [p["id"] for p in pools if p["id"] == pool] or [p["id"] for p in pools if p.get("name") == pool]
    if not ids:
        known = ", ".join(sorted({p["id"] for p in pools} | {p.get("name", "") for p in pools})) or "none"
        raise UnknownPool(f"no live pool has the id or name {pool!r} (live: {known})")
    return ids


def send_command(
    command: str,
    *,
    pool: str | None = None,
    all_pools: bool = False,
    args: dict | None = None,
    timeout: float = 2.0,
    connection: redis.Redis | None = None,
) -> list[Reply]:
    """Send a command to one pool (by id), every pool with a name, or all; one Reply per pool.

    Raises UnknownPool when nothing matches, CommandError for a bad command; a pool that does
    not answer within ``timeout`` seconds gives ``Reply(ok=False, timed_out=True)``.
    """
    args = check_command(command, args or {})
    args.pop("prefer", None)
    connection = connection or registry_connection()
    ids = _targets(read_status(connection), pool, all_pools)
    token = uuid.uuid4().hex
    reply_to = wire.reply_key(token)
    replies: dict[str, Reply] = {}
    for pool_id in ids:
        message = wire.CommandMessage(command, args, f"{token[:16]}-{len(replies)}", reply_to)
        if connection.publish(wire.channel(pool_id), message.encode()) == 0:
            replies[pool_id] = Reply(pool_id, False, "not listening: its control child is down or it just stopped")
    deadline = time.monotonic() + timeout
    while len(replies) < len(ids):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        item = connection.blpop([reply_to], timeout=max(0.01, min(left, 1.0)))
        if item is None:
            continue
        try:
            data = json.loads(item[1])
            replies[data["pool_id"]] = Reply(data["pool_id"], bool(data["ok"]), str(data["message"]), data["changes"])
        except (ValueError, KeyError, TypeError):
            continue
    connection.delete(reply_to)
    for pool_id in ids:
        replies.setdefault(pool_id, Reply(pool_id, False, f"no reply within {timeout:g}s", {}, timed_out=True))
    return [replies[pool_id] for pool_id in ids]
