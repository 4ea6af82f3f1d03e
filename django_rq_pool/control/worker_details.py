"""What the control child reads about each worker that the master does not know.

rq's state, the current job and the job counts come from the workers' rq hashes, one script per
Redis; unique memory (USS) from /proc, at most every ``USS_EVERY`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

from django_rq_pool.control.autoscale.memory import rollup
from django_rq_pool.control.state import Details, PoolView

USS_EVERY = 10.0  # reading smaps_rollup costs the kernel ~0.5 ms per worker
READ_WORKERS = """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('HMGET', key, 'state', 'current_job', 'successful_job_count', 'failed_job_count')
end
return out
"""


def _text(value: bytes | None) -> str | None:
    return value.decode() if value else None


def _uss(pid: int) -> int | None:
    """Private_Clean + Private_Dirty from smaps_rollup: one small read, unlike a walk of smaps."""
    figures = rollup(pid)
    return figures.get("Private_Clean", 0) + figures.get("Private_Dirty", 0) if figures else None


class WorkerDetails:
    """The pool's workers' details by pid, as last read."""

    def __init__(self, worker_connection: Callable[[str], redis.Redis]):
        self.worker_connection = worker_connection  # the Redis a queue list's workers register in
        self.by_pid: dict[int, Details] = {}
        self.next_uss = 0.0

    def read(self, view: PoolView, pids: list[int] | None = None) -> None:
        """rq's state, current job and job counts (one script per Redis), and USS from /proc."""
        by_list: dict[str, list[int]] = {}
        for pid, worker in view.workers.items():
            if pids is None or pid in pids:
                by_list.setdefault(worker["list"], []).append(pid)
        by_connection: dict[int, tuple[redis.Redis, list[int]]] = {}
        for key, members in by_list.items():
            connection = self.worker_connection(key.split(",")[0])
            by_connection.setdefault(id(connection), (connection, []))[1].extend(members)
        for connection, members in by_connection.values():
            script = connection.register_script(READ_WORKERS)
            rows = script(keys=[f"rq:worker:{view.workers[pid]['name']}" for pid in members])
            for pid, (state, job, done, failed) in zip(members, rows, strict=True):
                uss = self.by_pid[pid].uss if pid in self.by_pid else None
                self.by_pid[pid] = Details(_text(state), _text(job), int(done or 0) + int(failed or 0), uss)
        if pids is not None:
            return
        now = time.monotonic()
        if now >= self.next_uss or any(d.uss is None for d in self.by_pid.values()):
            self.next_uss = now + USS_EVERY
            for pid, details in self.by_pid.items():
                details.uss = _uss(pid)
        for pid in list(self.by_pid):
            if pid not in view.workers:
                del self.by_pid[pid]

    def idle(self, view: PoolView, key: str) -> list[int]:
        """This list's idle workers (read now), so a scale-down retires them first."""
        pids = [pid for pid, worker in view.workers.items() if worker["list"] == key]
        if pids:
            self.read(view, pids)
        return [pid for pid in pids if self.by_pid.get(pid, Details()).state == "idle"]
