"""``--hot-swap``: take over from the pool named in the pidfile without a moment of zero workers.

The new pool starts while the old one runs. Once every new worker listens, the new master writes
its pid into the pidfile and sends QUIT to the old master: a graceful stop, so the old workers
finish their current jobs and exit. Queued jobs stay in Redis for the new workers; none is lost.
Only a pool proven to own the pidfile (see :mod:`django_rq_pool.service.pidfile`) is signalled: a
stale file whose pid now names another process is simply replaced. Only one hot swap of a
pidfile runs at a time (:mod:`django_rq_pool.service.swap_lock`).
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

from django_rq_pool.service.pidfile import PidFile, PidFileError, live_owner
from django_rq_pool.service.swap_lock import SwapLock

log = logging.getLogger(__name__)


class HotSwap:
    """The handover, run once when the new pool is up; the swap lock is held until it is done."""

    def __init__(self, pidfile: PidFile, old_pid: int, lock: SwapLock | None = None):
        self.pidfile = pidfile
        self.old_pid = old_pid
        self.lock = lock
        self.done = False

    def take_over(self, arbiter: Any) -> None:
        if self.done:
            return
        self.done = True
        try:
            self._take_over()
        finally:
            if self.lock is not None:
                self.lock.release()  # the next hot swap replaces this pool

    def _take_over(self) -> None:
        still_owner = live_owner(self.pidfile.path) == self.old_pid  # proven again: its pid may be reused by now
        try:
            self.pidfile.write(replace_live=still_owner)
        except PidFileError as exc:
            log.error("hot swap: %s; the old pool %d keeps running too", exc, self.old_pid)
            return
        if not still_owner:
            log.info("hot swap: the old pool %d is already gone", self.old_pid)
            return
        try:
            os.kill(self.old_pid, signal.SIGQUIT)
        except OSError as exc:
            log.error("hot swap: cannot signal the old pool %d: %s", self.old_pid, exc)
            return
        log.info("hot swap: new workers are listening; sent QUIT to the old pool %d (graceful stop)", self.old_pid)
