"""A worker's lineage: the pids of its job child and scheduler, on a page it shares with the master.

When a worker is killed, the kernel re-parents its children to the master (a subreaper), which
then cannot tell them from other processes it adopted (a process a finished job left running
on purpose). So each worker keeps these two pids up to date on a shared anonymous page the
master mapped before forking it: a plain memory write per job, no message, nothing that wakes
the master. The master reads the page only when it reaps the worker. Both ends live here.
"""

from __future__ import annotations

import mmap
import struct

PIDS = struct.Struct("=ii")  # job child, scheduler; 0 when there is none


class Lineage:
    """One worker's page: written by the worker, read by the master once the worker is dead."""

    def __init__(self) -> None:
        self._page = mmap.mmap(-1, mmap.PAGESIZE)  # anonymous and MAP_SHARED: both sides see each write

    def record(self, job_child: int, scheduler: int) -> None:
        """In the worker: its current job child and scheduler (0: none)."""
        PIDS.pack_into(self._page, 0, job_child, scheduler)

    def pids(self) -> tuple[int, int]:
        """In the master: the last (job child, scheduler) the worker recorded."""
        job_child, scheduler = PIDS.unpack_from(self._page, 0)
        return job_child, scheduler

    def close(self) -> None:
        self._page.close()
