"""Waking the autoscaler the moment a quiet list's queue gets a job, instead of polling its length.

A quiet list (at its ``min``, nothing waiting, nothing running) can only grow from a backlog. For
each such list with a single queue the control child keeps one blocking command pending on a
connection of its own::

    BLMOVE rq:queue:<name> rq:queue:<name> LEFT LEFT <WAIT_SECONDS>

Redis answers it when the queue gets a job, by moving the head of the list to the head of the same
list in one atomic step: the queue is left exactly as it was (same jobs, same order), nothing is
taken, and a job is never outside its queue, even if the control child dies while the command is
pending. Redis serves blocked clients one after the other while the list is non-empty, so a
worker waiting on the same queue still gets the job. The control child selects on these sockets
along with its others: a reply with a job makes the autoscaler's next round due at once, so a
burst is seen within a round trip of its first job; a reply at the timeout renews the wait.

A list with several queues is still polled (a blocking command waits on one list only).
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable, Iterable

import redis

log = logging.getLogger("django_rq_pool.control.autoscale")

WAIT_SECONDS = 5  # a pending wait times out (and is renewed at once) this often


class Waiter:
    """One pending ``BLMOVE`` on one queue, on a connection of its own."""

    def __init__(self, queue: str, connection: redis.Redis):
        pool = connection.connection_pool
        self.queue = queue
        self.connection = pool.connection_class(**pool.connection_kwargs)  # not the pool's: it blocks
        self.pending = False

    def arm(self) -> None:
        if not self.pending:
            key = f"rq:queue:{self.queue}"
            self.connection.send_command("BLMOVE", key, key, "LEFT", "LEFT", WAIT_SECONDS)
            self.pending = True

    @property
    def sock(self) -> socket.socket | None:
        return self.connection._sock if self.pending else None

    def answer(self) -> bool:
        """Read the reply (the socket is readable): True when a job is waiting, False at the timeout."""
        self.pending = False
        return self.connection.read_response() is not None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.connection.disconnect()


class Waker:
    """The waits of the quiet single-queue lists; see the module docstring."""

    def __init__(self) -> None:
        self.waiters: dict[str, Waiter] = {}  # list key -> its wait

    def keep(self, quiet: dict[str, str], steered: Iterable[str], connection_for: Callable[[str], redis.Redis]) -> None:
        """Have a wait pending on each of ``quiet`` (list key -> its only queue).

        A list with work keeps its connection, but its wait is not renewed once it answers; a list
        no longer ``steered`` (gone, pinned, not autoscaled) loses it. A Redis error drops a wait:
        the next round reads the list as usual and waits again.
        """
        for key in set(self.waiters) - set(steered):
            self.waiters.pop(key).close()
        for key, queue in quiet.items():
            waiter = self.waiters.get(key)
            try:
                if waiter is None or waiter.queue != queue:
                    if waiter is not None:
                        waiter.close()
                    waiter = self.waiters[key] = Waiter(queue, connection_for(queue))
                waiter.arm()
            except Exception as exc:  # Redis down, or a connection class that cannot be copied (Sentinel)
                log.debug("autoscale [%s]: waiting on %s failed (%s); polling it instead", key, queue, exc)
                dropped = self.waiters.pop(key, None)
                if dropped is not None:
                    dropped.close()

    def sockets(self) -> list[socket.socket]:
        return [sock for waiter in self.waiters.values() if (sock := waiter.sock) is not None]

    def covers(self, key: str) -> bool:
        """A wait is pending for this list: it needs no poll."""
        waiter = self.waiters.get(key)
        return waiter is not None and waiter.pending

    def woken(self, readable: Iterable[object]) -> bool:
        """Read the waits that answered: True if one saw a job; one that timed out waits again."""
        ready = set(map(id, readable))
        job = False
        for key, waiter in list(self.waiters.items()):
            if waiter.sock is None or id(waiter.sock) not in ready:
                continue
            try:
                if waiter.answer():
                    job = True
                    log.debug("autoscale [%s]: a job on %s", key, waiter.queue)
                else:
                    waiter.arm()
            except (redis.RedisError, OSError) as exc:
                log.debug("autoscale [%s]: waiting on %s failed (%s); polling it instead", key, waiter.queue, exc)
                self.waiters.pop(key).close()
                job = True  # let the round read the list now
        return job

    def close(self) -> None:
        for waiter in self.waiters.values():
            waiter.close()
        self.waiters.clear()
