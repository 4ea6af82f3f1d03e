"""Bringing queue lists to their counts: fork what they miss, warm-stop their surplus.

Only the lists that changed since the last pass are looked at (roster.py). A list backing off
gets only what :class:`~django_rq_pool.master.backoff.Backoff` allows; a fork that fails counts
as a failed start. In burst mode a slot whose worker drained its queues is not filled again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import NamedTuple
from uuid import uuid4

from django_rq_pool.common.lineage import Lineage
from django_rq_pool.config.options import PoolOptions
from django_rq_pool.config.plan import QueueGroup
from django_rq_pool.hooks import WorkerContext, run_hooks
from django_rq_pool.master.backoff import Backoff
from django_rq_pool.master.forking import Forker, send
from django_rq_pool.master.roster import Identity, Roster, WorkerRecord

log = logging.getLogger(__name__)


class WorkerStart(NamedTuple):
    """What a worker gets from the master at its fork, besides its context."""

    master_fds: tuple[int, ...]  # the master's pipes, closed in the worker
    listening_fd: int  # it writes its pid here once, when it starts to dequeue (readiness.py)
    paused: bool  # the pool is paused (USR2): take no job until CONT


class Spawner:
    """Forks and retires workers so each list that changed matches its count."""

    def __init__(
        self,
        options: PoolOptions,
        roster: Roster,
        backoff: Backoff,
        forker: Forker,
        worker_start: Callable[[], WorkerStart],
    ):
        self.options = options
        self.roster = roster
        self.backoff = backoff
        self.forker = forker
        self.worker_start = worker_start
        self.hostname = socket.gethostname()
        self.finished_slots: set[tuple[Identity, int]] = set()  # burst: slots whose worker drained its queues
        self._sequence = 0

    def fill(self, wanted: dict[Identity, QueueGroup], changed: set[Identity], now: float) -> None:
        """Stop the surplus of the lists that changed, and fork what they miss (``wanted``: the plan's lists)."""
        for identity in changed - wanted.keys():
            for record in self.roster.holders(identity):
                self.stop_worker(record, "its queue list is no longer configured")
        for identity, group in wanted.items():  # in the plan's order
            if identity not in changed:
                continue
            for record in self.roster.surplus(identity):
                self.stop_worker(record, f"[{group.name}] is down to {group.count}")
            free = self.roster.missing(identity)
            if free:
                self._spawn_missing(group, free, now)

    def _spawn_missing(self, group: QueueGroup, free: list[int], now: float) -> None:
        if self.options.burst:
            free = [i for i in free if (group.identity, i) not in self.finished_slots]
        for index in self.backoff.allowed(group, free, now):
            if not self.spawn_worker(group, index):
                return  # fork failed: backing off now, not forking again in this pass

    def stop_worker(self, record: WorkerRecord, why: str) -> None:
        log.info("stopping worker %d [%s]: %s", record.pid, record.group.name, why)
        self.roster.retire(record)
        send(record.pid, signal.SIGQUIT)

    def spawn_worker(self, group: QueueGroup, index: int) -> bool:
        from django_rq_pool.worker.entry import run_worker

        master_pid = self.forker.master_pid
        self._sequence += 1
        name = f"{self.hostname}.{master_pid}.{self._sequence}.{uuid4().hex[:6]}"
        context = WorkerContext(group=group, index=index, name=name, master_pid=master_pid)
        lineage = Lineage()
        pid = self.forker.fork()
        if pid == 0:
            if self.options.own_process_groups:
                os.setpgid(0, 0)
            start = self.worker_start()
            run_worker(context, self.options, start.master_fds, start.listening_fd, start.paused, lineage)
        if pid < 0:
            lineage.close()
            self.backoff.record_failure(group, "fork failed")
            return False
        if self.options.own_process_groups:
            with contextlib.suppress(OSError):  # the child already did it, or has already exited
                os.setpgid(pid, pid)
        self.roster.add(WorkerRecord(pid, context, time.monotonic(), lineage=lineage))
        log.info("spawned worker %d [%s] #%d as %s", pid, group.name, index, name)
        try:
            run_hooks("after_spawn", pid, context)
        except Exception:
            log.exception("after_spawn hook failed for worker %d [%s]; the worker keeps running", pid, group.name)
        return True
