"""The stop state machine: running -> graceful -> cold -> SIGKILL, and how the pool ends.

A graceful stop sends QUIT to every worker and waits (for ever, or ``graceful_timeout`` under
``--term graceful-wait``); a cold stop also sends USR1 (running jobs end failed) and waits
``kill_timeout``; then stragglers get SIGKILL. A stop signal during a graceful stop makes it
cold; one during a cold stop makes the SIGKILL due now. The pool exits once no worker and no
janitor is left (janitors are never cut short: they fail the jobs of killed workers).
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable

from django_rq_pool.common.exit_codes import EXIT_FORCED, EXIT_OK
from django_rq_pool.config.options import PoolOptions
from django_rq_pool.master.forking import send
from django_rq_pool.master.roster import Roster

log = logging.getLogger(__name__)


class PoolExit(Exception):
    """Ends the loop with an exit status and a last log line."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Stopper:
    """Where a stop is, and what it does next."""

    def __init__(
        self,
        options: PoolOptions,
        roster: Roster,
        signal_workers: Callable[[int], None],
        notify: Callable[[str], None],
    ):
        self.options = options
        self.roster = roster
        self.signal_workers = signal_workers
        self.notify = notify
        self.mode: str | None = None  # "graceful" or "cold" while stopping
        self.stop_deadline: float | None = None
        self.killed = 0  # workers SIGKILLed because they ignored the stop

    @property
    def stopping(self) -> bool:
        return self.mode is not None

    @property
    def state(self) -> str:
        return "stopping" if self.mode == "graceful" else "stopping (cold)"

    def begin(self, mode: str, timeout: float | None) -> None:
        """Graceful: QUIT every worker. Cold: also kill every running job (it ends failed)."""
        self.mode = mode
        self.stop_deadline = None if timeout is None else time.monotonic() + timeout
        self.notify("STOPPING=1")
        self.signal_workers(signal.SIGQUIT)
        if mode == "cold":
            self.signal_workers(signal.SIGUSR1)

    def escalate(self, name: str) -> None:
        """A stop signal during a stop: graceful becomes cold; during a cold stop, SIGKILL now."""
        if self.mode == "graceful":
            log.warning("%s during a graceful stop: escalating to a cold stop (running jobs are killed)", name)
            self.begin("cold", self.options.kill_timeout)
        else:
            log.warning("%s during a cold stop: killing the remaining workers now", name)
            self.stop_deadline = time.monotonic()

    def outcome(self) -> PoolExit:
        """How the pool ends once every worker and janitor has exited."""
        if self.killed:
            return PoolExit(
                EXIT_FORCED, f"stopped, but {self.killed} worker(s) ignored the stop and were killed with SIGKILL"
            )
        return PoolExit(EXIT_OK, f"all workers stopped ({self.mode} stop)")

    def enforce(self, janitor_pids: list[int]) -> None:
        """Past the deadline: a graceful stop turns cold; a cold one SIGKILLs what is left."""
        if self.stop_deadline is None or time.monotonic() < self.stop_deadline:
            return
        if self.mode == "graceful":
            log.warning("graceful stop timed out; killing the jobs still running")
            self.begin("cold", self.options.kill_timeout)
            return
        for record in list(self.roster.records.values()):
            if not record.killed:
                log.error("worker %d [%s] did not stop; SIGKILL", record.pid, record.group.name)
                record.killed = True
                self.killed += 1
            send(record.pid, signal.SIGKILL)
        for pid in janitor_pids:
            send(pid, signal.SIGKILL)
        self.stop_deadline = time.monotonic() + self.options.kill_timeout

    def deadline(self, now: float) -> float | None:
        return self.stop_deadline
