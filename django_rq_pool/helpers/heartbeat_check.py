"""The heartbeat check child: reads each worker's ``last_heartbeat`` from Redis for the master.

Forked by the master every heartbeat interval (see :mod:`django_rq_pool.master.stuck`); it writes
one line per worker to a pipe and exits, so the master never waits on Redis.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django_rq_pool.common.child import run_logged
from django_rq_pool.common.heartbeat_rule import UNREADABLE

DEFAULT_JOB_TIMEOUT = 180  # rq's default when a job has none recorded


@dataclass(frozen=True)
class Watched:
    """What the monitor child needs to know about one worker (copied at fork time)."""

    pid: int
    name: str
    queue: str  # first queue of its list: picks the Redis connection
    worker_class: str | None


def job_allowance(timeout: bytes | None) -> str:
    """Extra silence allowed to a worker running this job in-process (it cannot heartbeat meanwhile).

    rq stores a job's timeout; with none stored rq applies its default. A timeout of -1 (or any
    value <= 0) means the job may run forever: rq sets no alarm, so neither may the pool.
    """
    if not timeout:
        return str(DEFAULT_JOB_TIMEOUT)
    try:
        seconds = float(timeout)
    except ValueError:
        return str(DEFAULT_JOB_TIMEOUT)
    return "inf" if seconds <= 0 else f"{seconds:g}"


def read_heartbeats(watched: Iterable[Watched], timeout: float | None = None) -> Iterator[str]:
    """In the monitor child: 'pid heartbeat-epoch-or-dash allowance' for each worker ('inf': never stuck).

    A worker whose Redis cannot be read gets 'pid ? 0' (not judged this time) instead of failing the
    whole check: one Redis server down must not blind the check to the workers of the others.
    ``timeout`` bounds each connection's connect and reads, so a silent server cannot use up the
    child's whole alarm.
    """
    import django_rq
    import redis

    connections: dict[str, Any] = {}
    failed: set[str] = set()
    for item in watched:
        if item.queue not in failed:
            try:
                if item.queue not in connections:
                    connections[item.queue] = _connection(django_rq.get_queue(item.queue).connection, timeout)
                yield _heartbeat_line(connections[item.queue], item)
                continue
            except (redis.RedisError, OSError):
                failed.add(item.queue)
        yield f"{item.pid} {UNREADABLE} 0\n"


def _connection(connection: Any, timeout: float | None) -> Any:
    kwargs = getattr(getattr(connection, "connection_pool", None), "connection_kwargs", None)
    if timeout is not None and isinstance(kwargs, dict):
        kwargs.update(socket_timeout=timeout, socket_connect_timeout=timeout)
    return connection


def _heartbeat_line(connection: Any, item: Watched) -> str:
    from django_rq.workers import get_worker_class
    from rq.utils import utcparse

    from django_rq_pool.compat import runs_jobs_in_process

    beat, state, job_id = connection.hmget(f"rq:worker:{item.name}", ["last_heartbeat", "state", "current_job"])
    epoch = f"{utcparse(beat.decode()).timestamp():.3f}" if beat else "-"
    allowance = "0"
    in_process = runs_jobs_in_process(get_worker_class(item.worker_class))
    if in_process and state == b"busy" and job_id:
        allowance = job_allowance(connection.hget(f"rq:job:{job_id.decode()}", "timeout"))
    return f"{item.pid} {epoch} {allowance}\n"


def run_monitor(watched: list[Watched], out_fd: int, limit: float) -> int:
    """Monitor child body: a hung Redis must not keep it alive past ``limit`` seconds."""
    return run_logged("heartbeat check", _write_heartbeats, watched, out_fd, limit)


def _write_heartbeats(watched: list[Watched], out_fd: int, limit: float) -> int:
    """Each line is flushed as soon as it is known, so what was read before the alarm still counts."""
    signal.alarm(max(1, int(limit)))
    with os.fdopen(out_fd, "w") as out:
        for line in read_heartbeats(watched, timeout=max(1.0, limit / 4)):
            out.write(line)
            out.flush()
    return 0
