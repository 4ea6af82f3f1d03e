"""Stuck workers: a live worker process whose Redis heartbeat stopped is killed and replaced.

rq's job timeout handles a job that runs too long; it cannot help when the worker process
itself is blocked (SIGSTOPped, deadlocked, hung on a dead socket): that worker stops
heartbeating while its pid stays alive, so the master would keep it forever.

The master never talks to Redis (it must never block), so every ``interval`` seconds it forks
a short-lived monitor child that reads each worker's ``last_heartbeat`` from Redis and writes
one line per worker to a pipe; the master drains the pipe without blocking and decides.
A worker is stuck when its newest heartbeat is older than ``stuck_timeout`` (counted at the
earliest from its start and from the moment Redis became reachable again, so an outage or a
Redis restart that lost the keys does not condemn healthy workers; this holds per worker, so
one Redis server down among several blinds the check only to its own workers). A worker running a job
in-process (``SimpleWorker``) cannot heartbeat during the job, so it gets the job's timeout
on top; a job without a timeout (``job_timeout=-1``) may run as long as it likes, so its live
worker is never judged stuck (rq sets no alarm for it either). Workers are told to heartbeat at
least every ``stuck_timeout / 4`` seconds (at most 30).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field

from django_rq_pool.common.heartbeat_rule import UNREADABLE

log = logging.getLogger(__name__)


@dataclass
class Beat:
    newest: float  # epoch of the newest heartbeat seen, else of the worker's start
    allowance: float = 0.0
    readable: bool = True  # False while its Redis cannot be read
    since: float = 0.0  # epoch its Redis became readable again: ages count from there at the earliest


@dataclass
class HeartbeatMonitor:
    """Master-side state: when to check, what the last checks saw, who is stuck."""

    stuck_timeout: float
    interval: float
    pid: int | None = None
    next_check: float = 0.0
    reachable_since: float = field(default_factory=time.time)
    redis_reachable: bool = True
    beats: dict[int, Beat] = field(default_factory=dict)
    _fd: int = -1
    _buffer: bytes = b""

    @property
    def fd(self) -> int:
        """The running check's pipe, -1 between checks."""
        return self._fd

    def due(self, now: float) -> bool:
        return self.pid is None and now >= self.next_check

    def started(self, pid: int, read_fd: int, now: float) -> None:
        self.pid, self._fd, self.next_check = pid, read_fd, now + self.interval
        os.set_blocking(read_fd, False)

    def drain(self) -> None:
        """Read what the child wrote so far, so a long report never fills the pipe."""
        if self._fd < 0:
            return
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self._fd, 65536):
                self._buffer += chunk

    def finished(self, ok: bool, live: dict[int, float]) -> list[tuple[int, float, float]]:
        """The child exited: update what we know; return (pid, seconds silent, limit) of stuck workers.

        ``live`` maps each live worker pid to its start time (epoch). Only workers whose heartbeat
        this report read are judged: a worker whose Redis could not be read (``?``) or that the
        report does not reach (the child died first) waits for a report that can read it, and its
        age then counts from that moment, as after an outage.
        """
        self.drain()
        os.close(self._fd)
        report, self._buffer, self._fd, self.pid = self._buffer.decode(), b"", -1, None
        now = time.time()
        read, unreadable = self._parse(report, live)
        if not ok and not read and not unreadable:
            if self.redis_reachable:
                log.warning("heartbeat check could not read Redis; stuck workers are not judged until it can")
            self.redis_reachable = False
            return []
        if not self.redis_reachable:
            log.info("heartbeat check reads Redis again; heartbeat ages count from now")
            self.redis_reachable, self.reachable_since = True, now
        self.beats = {pid: beat for pid, beat in self.beats.items() if pid in live}
        newly_unreadable = [pid for pid in unreadable if self.beats.setdefault(pid, Beat(live[pid])).readable]
        if newly_unreadable:
            log.warning(
                "heartbeat check cannot read Redis for workers %s; they are not judged until it can",
                ", ".join(map(str, sorted(newly_unreadable))),
            )
        for pid in unreadable:
            self.beats[pid].readable = False
        stuck = []
        for pid, (newest, allowance) in read.items():
            beat = self.beats.setdefault(pid, Beat(live[pid]))
            if not beat.readable:
                beat.readable, beat.since = True, now
            if newest is not None:
                beat.newest = max(beat.newest, newest)
            beat.allowance = allowance
            limit = self.stuck_timeout + beat.allowance
            silent = now - max(beat.newest, beat.since, self.reachable_since)
            if silent > limit:
                stuck.append((pid, silent, limit))
        return stuck

    @staticmethod
    def _parse(report: str, live: dict[int, float]) -> tuple[dict[int, tuple[float | None, float]], set[int]]:
        """Lines of live workers: pid -> (newest heartbeat or None, allowance), and the unreadable pids."""
        read: dict[int, tuple[float | None, float]] = {}
        unreadable: set[int] = set()
        for line in report.splitlines():
            try:
                pid_text, epoch, allowance = line.split()
                pid = int(pid_text)
                if epoch == UNREADABLE:
                    if pid in live:
                        unreadable.add(pid)
                    continue
                newest, extra = None if epoch == "-" else float(epoch), float(allowance)
            except ValueError:
                log.warning("heartbeat check: ignoring malformed report line %r", line[:100])
                continue
            if pid in live:
                read[pid] = (newest, extra)
        return read, unreadable
