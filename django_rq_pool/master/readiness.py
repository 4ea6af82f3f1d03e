"""When is the pool "up"? When every wanted worker is forked AND has reached rq's listening loop.

The arbiter's ``on_ready`` fires once every worker is forked. A forked worker still has to build
its rq worker, connect to Redis and register, which takes about a second. Daemon readiness, the
hot-swap handover and systemd's READY=1 wait for that too, so "up" means "listening". The master
never talks to Redis and never polls its workers: each worker writes its pid once to a pipe the
master sleeps on when it starts to dequeue (:mod:`django_rq_pool.common.listening_pipe`), and the roster counts them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from django_rq_pool.common.listening_pipe import announced
from django_rq_pool.master.roster import Roster

log = logging.getLogger(__name__)


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


class ListeningPipe:
    """The master's ends of the pipe its workers say "listening" on (common/listening_pipe.py)."""

    def __init__(self, roster: Roster):
        self.roster = roster
        self.read_fd, self.write_fd = -1, -1  # every worker inherits write_fd

    def open(self) -> int:
        """Open the pipe; returns the end the master sleeps on."""
        self.read_fd, self.write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        return self.read_fd

    def read(self) -> None:
        """Count the workers that said they listen since the last read."""
        for pid in announced(self.read_fd):
            self.roster.mark_listening(pid)

    def close_write(self) -> None:
        if self.write_fd >= 0:
            os.close(self.write_fd)
