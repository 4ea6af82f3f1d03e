"""Janitor forking: after a worker dies abnormally, a short-lived child fails its job in Redis.

The master never talks to Redis, so the accounting of a dead worker (fail its STARTED job with
the reason, unregister it) runs in a child (:mod:`django_rq_pool.helpers.janitor`). A janitor
whose fork failed stays pending and is retried a second later; the pool never exits with one
pending (see :meth:`Janitors.pending`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass

from django_rq_pool.master.forking import Forker, describe_status
from django_rq_pool.master.roster import WorkerRecord

log = logging.getLogger(__name__)

JANITOR_RETRY = 1.0  # seconds between attempts to fork a janitor after fork() failed
FLUSH_ATTEMPTS = 5  # forks tried by an exiting master before it does a janitor's work itself
EXIT_WAIT = 5.0  # seconds an exiting master waits for its janitors to finish


@dataclass
class Janitor:
    """A short-lived child that fails the jobs of a dead worker."""

    pid: int
    worker_name: str


class Janitors:
    """The janitors running and the dead workers still waiting for one."""

    def __init__(self, forker: Forker, app_name: str):
        self.forker = forker
        self.app_name = app_name
        self.running: dict[int, Janitor] = {}
        self.waiting: list[tuple[WorkerRecord, int]] = []  # (dead worker, its waitpid status)

    @property
    def pending(self) -> bool:
        """A janitor runs or waits to be forked: the pool must not exit yet."""
        return bool(self.running or self.waiting)

    def need(self, record: WorkerRecord, status: int) -> None:
        """This worker died abnormally: fork its janitor in this pass (after its replacement)."""
        self.waiting.append((record, status))

    def start(self) -> None:
        """Fork a janitor for each dead worker; the rest wait for the next pass if forking fails."""
        waiting, self.waiting = self.waiting, []
        for index, (record, status) in enumerate(waiting):
            if not self._fork(record, status):
                self.waiting.extend(waiting[index:])
                return

    def flush(self) -> None:
        """The master is exiting: fork every janitor still waiting; do the work here if forking fails.

        A forked janitor outlives the master (it ignores the stop signals); without it the dead
        worker's job would stay STARTED until rq's own maintenance, up to 10 minutes later.
        """
        for _attempt in range(FLUSH_ATTEMPTS):
            self.start()
            if not self.waiting:
                return
            time.sleep(JANITOR_RETRY / FLUSH_ATTEMPTS)  # fork() fails for want of memory or pids: often briefly
        from django_rq_pool.helpers.janitor import run_janitor

        waiting, self.waiting = self.waiting, []
        for record, status in waiting:
            log.warning("janitor for worker %s cannot be forked; the exiting master does its work", record.context.name)
            run_janitor(record.context.name, record.group, self._reason(record, status))

    def settle(self, timeout: float) -> None:
        """The master is exiting: give the running janitors up to ``timeout`` seconds to finish.

        Reaping them here logs how each ended; one still running after that finishes on its own.
        """
        deadline = time.monotonic() + timeout
        while self.running and time.monotonic() < deadline:
            for pid in list(self.running):
                with contextlib.suppress(ChildProcessError):
                    done, status = os.waitpid(pid, os.WNOHANG)
                    if done:
                        self.reaped(pid, status)
            time.sleep(0.05)
        for janitor in self.running.values():
            log.warning(
                "janitor %d for worker %s still runs; it finishes after the master", janitor.pid, janitor.worker_name
            )

    def reaped(self, pid: int, status: int) -> bool:
        """True if ``pid`` was a janitor."""
        janitor = self.running.pop(pid, None)
        if janitor is None:
            return False
        level = logging.DEBUG if status == 0 else logging.WARNING
        log.log(level, "janitor %d for worker %s %s", pid, janitor.worker_name, describe_status(status))
        return True

    def pids(self) -> list[int]:
        return list(self.running)

    def deadline(self, now: float) -> float | None:
        return now + JANITOR_RETRY if self.waiting else None

    @staticmethod
    def _reason(record: WorkerRecord, status: int) -> str:
        """The failure reason the janitor stores with the dead worker's job."""
        kill_reason = f" ({record.kill_reason})" if record.kill_reason else ""
        return (
            f"worker {record.context.name} (pid {record.pid}, queues {record.group.name}) "
            f"{describe_status(status)}{kill_reason} while running this job; failed by rqpool"
        )

    def _fork(self, record: WorkerRecord, status: int) -> bool:
        from django_rq_pool.helpers.janitor import run_janitor

        name, group, reason = record.context.name, record.group, self._reason(record, status)
        pid = self.forker.fork_helper(
            f"janitor:{group.name}",
            f"rqpool-janitor[{self.app_name}]: {name}",
            lambda: run_janitor(name, group, reason),
            # Finish the accounting whatever stops the pool: the master's exit (QUIT), a Ctrl-C or a
            # TERM sent to every process. It gives up by itself (see janitor.py).
            ignore_stop=True,
            outlive=True,  # the job must end failed even if the master exits right after this fork
        )
        if pid < 0:
            log.warning("janitor for worker %s not started (fork failed); retrying next pass", name)
            return False
        self.running[pid] = Janitor(pid, name)
        return True
