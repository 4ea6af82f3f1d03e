"""Processes the master adopted as a child subreaper, and which of them it kills.

When a worker is killed, its job child and its scheduler child are re-parented to the master.
Left alive, the scheduler keeps the dead worker's Redis socket with its BLMOVE pending, and the
next job vanishes into the intermediate queue; so they are SIGKILLed when the worker is reaped,
each with its process group (what the job started). The master knows them from the worker's
lineage page (common/lineage.py) and, with a process group per worker, from that group.

Nothing else it adopted is killed, during the run or at a pool stop: a process a finished job
left running on purpose is reaped when it exits, and outlives the master if it runs longer.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Iterable

import psutil

from django_rq_pool.common.linux import child_pids
from django_rq_pool.master.roster import WorkerRecord

log = logging.getLogger(__name__)


class Orphans:
    """Kills the adopted children a dead worker leaves behind."""

    def __init__(self, master_pid: int, own_process_groups: bool, known: Callable[[], Iterable[int]]):
        self.master_pid = master_pid
        self.own_process_groups = own_process_groups
        self.known = known  # every pid the master forked itself and has not reaped

    def kill_left_by(self, record: WorkerRecord) -> None:
        """SIGKILL the dead worker's job child and scheduler (with their groups) and the rest of its own group."""
        lineage = {pid for pid in record.lineage.pids() if pid > 0} if record.lineage else set()
        own_group = record.pid if self.own_process_groups else None
        known = set(self.known())
        for pid in child_pids(self.master_pid):
            if pid in known:
                continue
            try:
                pgid = os.getpgid(pid)
                if pid not in lineage and pgid not in lineage and pgid != own_group:
                    continue  # adopted from elsewhere: not this worker's
                name = psutil.Process(pid).name()
                if pgid == pid or pgid in lineage:  # a job child's group: what its job started
                    os.killpg(pgid, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, psutil.NoSuchProcess):
                continue
            log.warning(
                "killed orphaned process %d (%s) of a dead worker (%d [%s])", pid, name, record.pid, record.group.name
            )
