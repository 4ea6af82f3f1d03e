"""Stopping an idle worker without losing the job its blocking dequeue may just have received.

rq stops an idle worker by raising StopRequested from the signal handler. If the signal lands
after Redis handed a job over (BLPOP for a multi-queue list, BLMOVE for a single queue) but before
rq registered it, the exception throws the job away: popped, it is in no queue and no registry,
and stays QUEUED forever (the chaos test saw this under WINCH and reloads).

Instead, the handler sets the stop flag and a helper thread asks Redis, on its own connection, to
end this worker's blocked command with an error (``CLIENT UNBLOCK <id> ERROR``), as soon as it
blocks. Redis decides atomically: either the command was
still blocked and returns the error (nothing was popped), or the job was already handed over and
the worker runs it before stopping. The worker's blocked connection is found in ``CLIENT LIST``
by its address (one of this process's sockets) or by the client name rq gives it.

The thread acts only while the worker is inside its dequeue: once the dequeue has returned a job,
a blocking call seen on the same socket is the job's own (a ``SimpleWorker`` job, or a job child
using the connection it inherited) and must not be ended.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil
import redis
from redis.exceptions import AuthenticationError, AuthorizationError

from django_rq_pool.compat import inet_connections
from django_rq_pool.worker.doorbell import wake

log = logging.getLogger(__name__)

BLOCKING_COMMANDS = {"blpop", "blmove", "brpoplpush", "brpop", "blmpop"}
POLL_INTERVAL = 0.05
UNREACHABLE_POLL_INTERVAL = 0.5  # between tries while Redis does not answer


def interrupt_blocking_dequeue(worker: Any, dequeueing: Callable[[], bool]) -> None:
    """From the stop signal's handler: end the worker's blocking dequeue now, or as soon as it starts.

    The signal may arrive just before the dequeue blocks (during its heartbeat), so a helper thread
    keeps watching for up to one dequeue timeout, while ``dequeueing()`` says the worker is still in it.
    """
    wake()  # a doorbell wait (dequeue.py) has no blocking command to end
    patience = getattr(worker, "dequeue_timeout", 30) + 5
    threading.Thread(
        target=_unblock_when_blocked, args=(worker, patience, dequeueing), name="rqpool-unblock", daemon=True
    ).start()


def _unblock_when_blocked(worker: Any, patience: float, dequeueing: Callable[[], bool]) -> None:
    """Until the request is seen or ``patience`` runs out: end the blocked dequeue as soon as there is one.

    Redis unreachable is no failure here: the dequeue's own connection meets the same outage, and the
    dequeue loop's outage wait (outage.py) sees a stop within a poll, so this thread keeps trying quietly
    (a blocked dequeue may still be reached once Redis answers) and reports only what it could not do.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())  # signals stay with the main thread
    pool = worker.connection.connection_pool
    kwargs = {**pool.connection_kwargs, "socket_timeout": 2, "socket_connect_timeout": 2, "client_name": None}
    # Its own pool: never share a connection (or the pool's lock) with the worker's main thread.
    client = redis.Redis(connection_pool=type(pool)(connection_class=pool.connection_class, **kwargs))
    started = time.monotonic()
    unreachable: redis.RedisError | None = None
    try:
        while time.monotonic() - started < patience and dequeueing():
            try:
                if _unblock(client, worker.name, dequeueing):
                    return
                unreachable = None
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if isinstance(exc, (AuthenticationError, AuthorizationError)):
                    raise  # refused, not unreachable
                unreachable = exc
            time.sleep(POLL_INTERVAL if unreachable is None else UNREACHABLE_POLL_INTERVAL)
        if unreachable is not None and dequeueing():
            log.info(
                "Worker %s (pid %d, queues %s): Redis unreachable for %d s (%s): its dequeue was not interrupted "
                "and acts on the request when its current wait ends",
                worker.name,
                os.getpid(),
                ",".join(worker.queue_names()),
                time.monotonic() - started,
                unreachable,
            )
    except redis.RedisError as exc:
        log.warning(
            "Worker %s (pid %d, queues %s): cannot interrupt its blocking dequeue (%s); "
            "it acts on the request when that wait times out",
            worker.name,
            os.getpid(),
            ",".join(worker.queue_names()),
            exc,
        )
    finally:
        client.connection_pool.disconnect()


def _unblock(client: redis.Redis, name: str, dequeueing: Callable[[], bool]) -> bool:
    mine = _local_addresses()
    for entry in client.client_list(_type="normal"):
        ours = entry.get("addr") in mine or entry.get("name") == name
        if ours and entry.get("cmd") in BLOCKING_COMMANDS and dequeueing():
            return bool(client.client_unblock(int(entry["id"]), error=True))
    return False


def _local_addresses() -> set[str]:
    """'ip:port' of this process's TCP sockets, as Redis shows its clients' addresses."""
    found = set()
    for conn in inet_connections(psutil.Process()):
        if conn.laddr:
            host = f"[{conn.laddr.ip}]" if ":" in conn.laddr.ip else conn.laddr.ip
            found.add(f"{host}:{conn.laddr.port}")
    return found


def is_unblock_error(exc: BaseException) -> bool:
    return isinstance(exc, redis.ResponseError) and str(exc).startswith("UNBLOCKED")
