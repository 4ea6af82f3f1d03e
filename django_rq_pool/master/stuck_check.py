"""Heartbeat-check forking: every interval a child reads the workers' heartbeats; the stuck are killed.

The judgement is in :mod:`django_rq_pool.master.stuck`, the Redis reading in
:mod:`django_rq_pool.helpers.heartbeat_check`; this module forks the child, drains its pipe
as the report comes (registered with the loop), and SIGKILLs the workers judged stuck (the
kill reason goes to their janitor's job failure).
"""

from __future__ import annotations

import logging
import os
import signal
import time

from django_rq_pool.common.heartbeat_rule import heartbeat_interval
from django_rq_pool.helpers.heartbeat_check import Watched, run_monitor
from django_rq_pool.master.forking import Forker, send
from django_rq_pool.master.roster import Roster
from django_rq_pool.master.stuck import HeartbeatMonitor
from django_rq_pool.master.wakeups import Wakeups

log = logging.getLogger(__name__)


class StuckCheck:
    """Forks the heartbeat check when due and acts on its report."""

    def __init__(self, stuck_timeout: float, roster: Roster, forker: Forker, wakeups: Wakeups, app_name: str):
        interval = heartbeat_interval(stuck_timeout)
        self.monitor = HeartbeatMonitor(stuck_timeout, interval, next_check=time.monotonic() + interval)
        self.roster = roster
        self.forker = forker
        self.wakeups = wakeups
        self.app_name = app_name

    @property
    def pid(self) -> int | None:
        """The running check's pid, None between checks."""
        return self.monitor.pid

    def maybe_start(self) -> None:
        """Fork the check child when due; it reads heartbeats from Redis so the master never does."""
        monitor = self.monitor
        if not monitor.due(time.monotonic()) or not self.roster.records:
            return
        watched = [
            Watched(r.pid, r.context.name, r.group.queues[0], r.group.options.worker_class)
            for r in self.roster.records.values()
        ]
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)

        def body() -> int:
            os.close(read_fd)
            return run_monitor(watched, write_fd, monitor.interval)

        pid = self.forker.fork_helper(
            "heartbeat-check", f"rqpool-heartbeat[{self.app_name}]: checking {len(watched)} workers", body
        )
        os.close(write_fd)
        if pid < 0:
            os.close(read_fd)
            monitor.next_check = time.monotonic() + monitor.interval
            return
        monitor.started(pid, read_fd, time.monotonic())
        self.wakeups.add_reader(read_fd, monitor.drain)  # drained as it comes: a long report never blocks the check

    def finished(self, status: int) -> None:
        """The check child was reaped: SIGKILL each worker it found stuck."""
        self.wakeups.remove_reader(self.monitor.fd)
        records = self.roster.records
        live = {pid: time.time() - (time.monotonic() - r.started) for pid, r in records.items()}
        for pid, silent, limit in self.monitor.finished(status == 0, live):
            record = records[pid]
            if record.kill_reason:
                continue
            record.kill_reason = f"stuck: no heartbeat in Redis for {silent:.0f}s, limit {limit:.0f}s"
            log.error("worker %d [%s] is %s; SIGKILL, it will be replaced", pid, record.group.name, record.kill_reason)
            send(pid, signal.SIGKILL)

    def deadline(self, now: float) -> float | None:
        return self.monitor.next_check if self.monitor.pid is None and self.roster.records else None
