"""When is the pool "up"? When every wanted worker is forked AND has reached rq's listening loop.

The arbiter's ``on_ready`` fires once every worker is forked. A forked worker still has to build
its rq worker, connect to Redis and register, which takes about a second. Daemon readiness, the
hot-swap handover and systemd's READY=1 wait for that too, so "up" means "listening". The master
never talks to Redis and never polls its workers: each worker writes its pid once to a pipe the
master sleeps on when it starts to dequeue (:func:`announce`), and the roster counts them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

MESSAGE = struct.Struct("=i")  # a pid: 4 bytes, well under PIPE_BUF, so every write is atomic


def announce(fd: int) -> None:
    """In a worker: say "listening" on the master's pipe, then close it."""
    with contextlib.suppress(OSError):  # the master is gone, or not reading: it will not wait for us
        os.write(fd, MESSAGE.pack(os.getpid()))
    os.close(fd)


def announced(fd: int) -> list[int]:
    """In the master: the pids written to the pipe since the last call."""
    pids = []
    while True:
        try:
            data = os.read(fd, 4096)  # a multiple of the message size: whole messages only
        except BlockingIOError:
            return pids
        if not data:
            return pids
        pids.extend(pid for (pid,) in MESSAGE.iter_unpack(data))


class ListeningGate:
    """Calls its listeners once every worker listens, after each ``on_ready`` of the arbiter."""

    def __init__(self) -> None:
        self.listeners: list[Callable[[Any], None]] = []
        self.armed = False

    def on_ready(self, arbiter: Any) -> None:
        self.armed = True
        self.on_tick(arbiter)

    def on_tick(self, arbiter: Any) -> None:
        if not self.armed or arbiter.stop_mode is not None or arbiter.roster.listening < arbiter.plan.total:
            return
        self.armed = False
        log.info("all %d workers are listening", arbiter.roster.listening)
        for listener in self.listeners:
            listener(arbiter)
