"""Processes the master adopted as a child subreaper, and which of them it kills.

When a worker is killed, its job child and its scheduler child are re-parented to the master.
Left alive, the scheduler keeps the dead worker's Redis socket with its BLMOVE pending, and the
next job vanishes into the intermediate queue; so they are SIGKILLed when the worker is reaped.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Iterable

import psutil

from django_rq_pool.common.linux import child_pids

log = logging.getLogger(__name__)


class Orphans:
    """Kills the master's adopted children that no collaborator knows."""

    def __init__(self, master_pid: int, known: Callable[[], Iterable[int]]):
        self.master_pid = master_pid
        self.known = known  # every pid the master forked itself and has not reaped

    def kill_strays(self) -> None:
        """SIGKILL orphans of a dead worker (its job child, its scheduler) adopted by the master."""
        known = set(self.known())
        for child_pid in child_pids(self.master_pid):
            if child_pid in known:
                continue
            try:
                child = psutil.Process(child_pid)
                pgid = os.getpgid(child.pid)
                if pgid == child.pid:
                    os.killpg(pgid, signal.SIGKILL)
                else:
                    os.kill(child.pid, signal.SIGKILL)
                log.warning("killed orphaned process %d (%s) of a dead worker", child.pid, child.name())
            except (ProcessLookupError, psutil.NoSuchProcess):
                continue
