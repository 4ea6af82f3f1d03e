"""One ``--hot-swap`` at a time: the lock a new pool holds while it takes a pidfile over.

The pidfile's own lock proves who owns it, not who is replacing the owner: two hot swaps started
together would both start their workers, both rename their pidfile over the path and both QUIT
the old pool, leaving two pools of which one is in no pidfile. So a hot swap first takes an
exclusive ``flock`` on ``.<pidfile name>.swap`` beside the pidfile, from before its first fork
until it owns the pidfile (or exits); a second one finds it held and starts nothing. The file
holds the holder's pid, for the loser's message, and is removed while still locked, so a later
claimer that opened the old file sees it is gone and opens the new one.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from django_rq_pool.service.pidfile import LOCK_RETRY, at_path, hold, let_go, lock_regular, read_pid


class SwapInProgress(Exception):
    """Another pool holds the swap lock: it is taking the pidfile over."""

    def __init__(self, pidfile: Path, holder: int | None):
        who = f"pool {holder}" if holder is not None else "another pool"
        super().__init__(f"hot swap refused: {who} is already taking over pidfile {pidfile}; this pool starts nothing")
        self.holder = holder


class SwapLock:
    """The swap lock of one pidfile; :meth:`acquire` or :class:`SwapInProgress`, then :meth:`release`."""

    def __init__(self, pidfile: Path):
        self.pidfile = pidfile
        self.path = pidfile.with_name(f".{pidfile.name}.swap")
        self._fd = -1
        self._owner: int | None = None

    @property
    def held(self) -> bool:
        return self._owner == os.getpid()

    def acquire(self) -> None:
        """Lock the file and write our pid; SwapInProgress naming the holder if another pool has it.

        OSError or PidFileError if the file cannot be created.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + LOCK_RETRY

        def busy() -> None:  # held: by another swap, or by one that has just locked and is writing its pid
            holder = read_pid(self.path)
            if holder is not None or time.monotonic() > deadline:
                raise SwapInProgress(self.pidfile, holder)

        fd = lock_regular(self.path, busy)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        hold(fd)
        self._fd, self._owner = fd, os.getpid()

    def release(self) -> None:
        """Remove the file, then drop the lock; only in the process that acquired it, once."""
        if not self.held:
            return
        if at_path(self._fd, self.path):
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        let_go(self._fd)
        self._fd, self._owner = -1, None
