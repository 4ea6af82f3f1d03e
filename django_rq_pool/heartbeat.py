"""Stuck workers: a live worker process whose Redis heartbeat stopped is killed and replaced.

rq's job timeout handles a job that runs too long; it cannot help when the worker process
itself is blocked (SIGSTOPped, deadlocked, hung on a dead socket): that worker stops
heartbeating while its pid stays alive, so the master would keep it forever.

The master never talks to Redis (it must never block), so every ``interval`` seconds it forks
a short-lived monitor child that reads each worker's ``last_heartbeat`` from Redis and writes
one line per worker to a pipe; the master drains the pipe without blocking and decides.
A worker is stuck when its newest heartbeat is older than ``stuck_timeout`` (counted at the
earliest from its start and from the moment Redis became reachable again, so an outage or a
Redis restart that lost the keys does not condemn healthy workers). A worker running a job
in-process (``SimpleWorker``) cannot heartbeat during the job, so it gets the job's timeout
on top. Workers are told to heartbeat at least every ``stuck_timeout / 4`` seconds (at most 30).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

MAX_INTERVAL = 30
DEFAULT_JOB_TIMEOUT = 180  # rq's default when a job has none recorded


def heartbeat_interval(stuck_timeout: float) -> int:
    """How often workers heartbeat so that a healthy one never looks stuck."""
    return int(max(1, min(MAX_INTERVAL, stuck_timeout / 4)))


def worker_heartbeat_kwargs(stuck_timeout: float) -> dict[str, int]:
    """rq Worker arguments: idle workers heartbeat every dequeue timeout (worker_ttl - 15), busy ones every
    job_monitoring_interval."""
    if stuck_timeout <= 0:
        return {}
    interval = heartbeat_interval(stuck_timeout)
    return {"worker_ttl": interval + 15, "job_monitoring_interval": interval}


@dataclass(frozen=True)
class Watched:
    """What the monitor child needs to know about one worker (copied at fork time)."""

    pid: int
    name: str
    queue: str  # first queue of its list: picks the Redis connection
    worker_class: str | None


def read_heartbeats(watched: Iterable[Watched]) -> list[str]:
    """In the monitor child: 'pid heartbeat-epoch-or-dash allowance' for each worker."""
    import django_rq
    from django_rq.workers import get_worker_class
    from rq.utils import utcparse
    from rq.worker import Worker

    lines = []
    connections: dict[str, Any] = {}
    for item in watched:
        if item.queue not in connections:
            connections[item.queue] = django_rq.get_queue(item.queue).connection
        connection = connections[item.queue]
        beat, state, job_id = connection.hmget(f"rq:worker:{item.name}", ["last_heartbeat", "state", "current_job"])
        epoch = f"{utcparse(beat.decode()).timestamp():.3f}" if beat else "-"
        allowance = 0
        in_process = not issubclass(get_worker_class(item.worker_class), Worker)
        if in_process and state == b"busy" and job_id:
            timeout = connection.hget(f"rq:job:{job_id.decode()}", "timeout")
            allowance = int(timeout) if timeout and int(timeout) > 0 else DEFAULT_JOB_TIMEOUT
        lines.append(f"{item.pid} {epoch} {allowance}\n")
    return lines


def run_monitor(watched: list[Watched], out_fd: int, limit: float) -> int:
    """Monitor child body: a hung Redis must not keep it alive past ``limit`` seconds."""
    signal.alarm(max(1, int(limit)))
    with os.fdopen(out_fd, "w") as out:
        out.writelines(read_heartbeats(watched))
    return 0


@dataclass
class Beat:
    newest: float  # epoch of the newest heartbeat seen, else of the worker's start
    allowance: float = 0.0


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

        ``live`` maps each live worker pid to its start time (epoch).
        """
        self.drain()
        os.close(self._fd)
        report, self._buffer, self._fd, self.pid = self._buffer.decode(), b"", -1, None
        now = time.time()
        if not ok:
            if self.redis_reachable:
                log.warning("heartbeat check could not read Redis; stuck workers are not judged until it can")
            self.redis_reachable = False
            return []
        if not self.redis_reachable:
            log.info("heartbeat check reads Redis again; heartbeat ages count from now")
            self.redis_reachable, self.reachable_since = True, now
        self.beats = {pid: beat for pid, beat in self.beats.items() if pid in live}
        for line in report.splitlines():
            try:
                pid_text, epoch, allowance = line.split()
                pid, newest, extra = int(pid_text), None if epoch == "-" else float(epoch), float(allowance)
            except ValueError:
                log.warning("heartbeat check: ignoring malformed report line %r", line[:100])
                continue
            if pid not in live:
                continue
            beat = self.beats.setdefault(pid, Beat(live[pid]))
            if newest is not None:
                beat.newest = max(beat.newest, newest)
            beat.allowance = extra
        stuck = []
        for pid, beat in self.beats.items():
            limit = self.stuck_timeout + beat.allowance
            silent = now - max(beat.newest, self.reachable_since)
            if silent > limit:
                stuck.append((pid, silent, limit))
        return stuck
