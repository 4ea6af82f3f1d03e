"""A non-destructive wait for writes to a worker's queues: client-side caching's broadcast mode.

A multi-queue worker whose queues are all empty must wait without popping anything, so that the
only pop stays the claim script's atomic LPOP+RPUSH (dequeue.py). Redis (6 or later, no server
configuration) tells a client of every write to keys under a prefix: a tracking connection runs
``CLIENT TRACKING ON REDIRECT <id> BCAST PREFIX <queue key> ...`` and the connection with that id,
subscribed to ``__redis__:invalidate``, receives a message for each write (an enqueuer's RPUSH, a
claim's LPOP, a push to an intermediate list of the same prefix). Each message only rings: the
worker then runs the claim script once more. An idle worker sends no command while it waits.

A warm stop or a pause ends the wait at once through a self-pipe that the signal handler writes
(``wake``); the wait then raises the same ``UNBLOCKED`` error that CLIENT UNBLOCK gives a blocked
BLPOP, so the worker's dequeue loop treats both alike.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import time
from collections.abc import Sequence

from redis import Redis
from redis.connection import Connection, ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

log = logging.getLogger(__name__)

INVALIDATE_CHANNEL = "__redis__:invalidate"
_wake_pipe: tuple[int, int, int] | None = None  # (pid, read end, write end)


def _pipe() -> tuple[int, int]:
    """This process's self-pipe; a forked child makes its own so as not to wake its parent."""
    global _wake_pipe
    if _wake_pipe is None or _wake_pipe[0] != os.getpid():
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        os.set_blocking(write_end, False)
        _wake_pipe = (os.getpid(), read_end, write_end)
    return _wake_pipe[1], _wake_pipe[2]


def wake() -> None:
    """From a signal handler: end this process's doorbell wait now, or the next one at once."""
    with contextlib.suppress(BlockingIOError):  # the pipe is full: a wake is already pending
        os.write(_pipe()[1], b"!")


def _drain_wake_pipe() -> None:
    with contextlib.suppress(BlockingIOError):
        while os.read(_pipe()[0], 512):
            pass


def disjoint_prefixes(keys: Sequence[str]) -> list[str]:
    """The keys minus those another key is a prefix of: Redis refuses overlapping prefixes."""
    ordered = sorted(set(keys))
    return [key for key in ordered if not any(key != other and key.startswith(other) for other in ordered)]


class Doorbell:
    """The subscribed connection and the tracking connection of one worker process."""

    def __init__(self, client: Redis, queue_keys: Sequence[str]) -> None:
        pool = client.connection_pool
        # RESP2: invalidations come as plain pub/sub replies (newer redis-py's maintenance hooks need RESP3).
        kwargs = {key: value for key, value in pool.connection_kwargs.items() if not key.startswith("maint_")}
        kwargs.update(client_name=None, protocol=2)
        self.pid = os.getpid()
        self.pool = pool
        self.prefixes = tuple(disjoint_prefixes(queue_keys))
        self.listener: Connection = pool.connection_class(**kwargs)
        self.tracker: Connection = pool.connection_class(**kwargs)
        try:
            self.listener.send_command("CLIENT", "ID")
            listener_id = int(self.listener.read_response())
            self.listener.send_command("SUBSCRIBE", INVALIDATE_CHANNEL)
            self.listener.read_response()
            arguments: list[str] = []
            for prefix in self.prefixes:
                arguments += ["PREFIX", prefix]
            self.tracker.send_command("CLIENT", "TRACKING", "ON", "REDIRECT", listener_id, "BCAST", *arguments)
            self.tracker.read_response()
        except BaseException:
            self.close()
            raise

    def serves(self, client: Redis, queue_keys: Sequence[str]) -> bool:
        same_pool = self.pool is client.connection_pool
        mine = self.pid == os.getpid() and same_pool and self.prefixes == tuple(disjoint_prefixes(queue_keys))
        return mine and self._tracker_alive()

    def _tracker_alive(self) -> bool:
        """False once the server closed the tracking connection (a client ``timeout``): it would ring no more."""
        try:
            return not self.tracker.can_read(timeout=0)
        except RedisConnectionError:
            return False

    def wait(self, seconds: float) -> bool:
        """True after a write under the prefixes (its messages read), False after ``seconds``; raise on a stop."""
        sock = self.listener._sock
        if sock is None:
            raise RedisConnectionError("The doorbell connection is closed")
        wake_fd = _pipe()[0]
        deadline = time.monotonic() + seconds
        while not self.listener.can_read(timeout=0):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            readable, _, _ = select.select([sock, wake_fd], [], [], left)
            if wake_fd in readable:
                _drain_wake_pipe()
                raise ResponseError("UNBLOCKED the doorbell wait was ended by a stop or pause")
            if readable:
                break
        while self.listener.can_read(timeout=0):
            self.listener.read_response()  # raises ConnectionError if Redis went away
        return True

    def close(self) -> None:
        self.listener.disconnect()
        self.tracker.disconnect()


class _Current:
    """This process's doorbell (one worker per process), or None until set up or after a failure."""

    doorbell: Doorbell | None = None
    refused: tuple[int, ConnectionPool] | None = None  # (pid, pool) whose Redis refused CLIENT TRACKING


def doorbell_for(client: Redis, queue_keys: Sequence[str]) -> Doorbell | None:
    """The doorbell for these queues, set up on first use; None where Redis refuses CLIENT TRACKING.

    A refusal is the server's configuration (its version, an ACL, a proxy), which does not change
    under a running worker: it is remembered, and logged once, rather than asked again every slice
    over two fresh connections.
    """
    current = _Current.doorbell
    if current is not None and current.serves(client, queue_keys):
        return current
    if current is not None and current.pid == os.getpid():
        current.close()
    _Current.doorbell = None
    refused = _Current.refused
    if refused is not None and refused[0] == os.getpid() and refused[1] is client.connection_pool:
        return None
    try:
        _Current.doorbell = Doorbell(client, queue_keys)
    except ResponseError as exc:
        _Current.refused = (os.getpid(), client.connection_pool)
        log.warning(
            "Redis refused CLIENT TRACKING (%s): this multi-queue worker waits in BLPOP, and a job Redis "
            "hands over is in no list for one round trip (a worker killed then loses it)",
            exc,
        )
    return _Current.doorbell


def listening_doorbell() -> Doorbell | None:
    """This process's doorbell as it stands, checked by nothing: the one a claim made now is covered by."""
    current = _Current.doorbell
    return current if current is not None and current.pid == os.getpid() else None


def drop_doorbell() -> None:
    """After a connection error: the next wait sets up a fresh doorbell."""
    if _Current.doorbell is not None and _Current.doorbell.pid == os.getpid():
        _Current.doorbell.close()
    _Current.doorbell = None
