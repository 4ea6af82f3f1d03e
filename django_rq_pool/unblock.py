"""Stopping an idle worker without losing the job its blocking dequeue may just have received.

rq stops an idle worker by raising StopRequested from the signal handler. If the signal lands
after Redis handed a job over (BLPOP for a multi-queue list, BLMOVE for a single queue) but before
rq registered it, the exception throws the job away: popped, it is in no queue and no registry,
and stays QUEUED forever (the chaos test saw this under WINCH and reloads).

Instead, the handler asks Redis, on a separate connection, to end this worker's blocked command
with an error (``CLIENT UNBLOCK <id> ERROR``). Redis decides atomically: either the command was
still blocked and returns the error (nothing was popped), or the job was already handed over and
the worker runs it before stopping. The worker's blocked connection is found in ``CLIENT LIST``
by its address (one of this process's sockets) or by the client name rq gives it.
"""

from __future__ import annotations

import logging
from typing import Any

import psutil
import redis

log = logging.getLogger(__name__)

BLOCKING_COMMANDS = {"blpop", "blmove", "brpoplpush", "brpop", "blmpop"}


def interrupt_blocking_dequeue(worker: Any) -> bool:
    """Unblock the worker's blocked dequeue, if there is one; True if Redis unblocked it."""
    pool = worker.connection.connection_pool
    kwargs = {**pool.connection_kwargs, "socket_timeout": 2, "socket_connect_timeout": 2, "client_name": None}
    # Its own pool: the worker's pool lock may be held by the code this signal interrupted.
    client = redis.Redis(connection_pool=type(pool)(connection_class=pool.connection_class, **kwargs))
    try:
        mine = _local_addresses()
        for entry in client.client_list(_type="normal"):
            ours = entry.get("addr") in mine or entry.get("name") == worker.name
            blocked = ours and entry.get("cmd") in BLOCKING_COMMANDS
            if blocked and client.client_unblock(int(entry["id"]), error=True):
                return True
    except redis.RedisError as exc:
        log.warning(
            "Worker %s: could not interrupt the blocking dequeue (%s); it stops at its timeout", worker.name, exc
        )
    finally:
        client.connection_pool.disconnect()
    return False


def _local_addresses() -> set[str]:
    """'ip:port' of this process's TCP sockets, as Redis shows its clients' addresses."""
    found = set()
    for conn in psutil.Process().net_connections(kind="inet"):
        if conn.laddr:
            host = f"[{conn.laddr.ip}]" if ":" in conn.laddr.ip else conn.laddr.ip
            found.add(f"{host}:{conn.laddr.port}")
    return found


def is_unblock_error(exc: BaseException) -> bool:
    return isinstance(exc, redis.ResponseError) and str(exc).startswith("UNBLOCKED")
