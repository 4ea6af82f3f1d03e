"""Redis commands and round trips per trivial job: rq's ``Worker`` against the pool's worker class.

``python -m bench.roundtrips [--jobs N]`` runs one forked worker at a time against a private
redis-server, on a single-queue list (``low``) and on a multi-queue list (``high,low``, jobs in
``low``), with a backlog: the worker takes ``max_jobs`` jobs and exits. Each figure is the
difference between a run of N jobs and one of N/4, divided by the difference in jobs, so the
worker's start and exit cancel out. Commands are counted with MONITOR (the worker and its job
children, by command name; a script's inner calls excluded); round trips are the worker process's
writes to its Redis socket (a pipeline is one), counted in that process.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
from pathlib import Path
from typing import Any

import redis

from bench.cleanup import cleans_up
from bench.dequeue import setup_django
from bench.measure import Monitor
from bench.redis_server import own_redis
from tests.harness import wait_for

QUEUE_LISTS = {"single": ("low",), "multi": ("high", "low")}


def worker_class(pool: bool) -> type:
    from rq.worker import Worker

    if not pool:
        return Worker
    from django_rq_pool.compat import WORKER_SHIMS
    from django_rq_pool.worker.dequeue import ClaimingWorkerMixin
    from django_rq_pool.worker.mixin import PoolWorkerMixin
    from django_rq_pool.worker.prefork import PreforkMixin

    return type("PoolWorker", (PreforkMixin, PoolWorkerMixin, ClaimingWorkerMixin, *WORKER_SHIMS, Worker), {})


def count_round_trips() -> list[int]:
    """In the worker: count each packed write to Redis by this process (not by its job children)."""
    from redis.connection import Connection

    pid = os.getpid()
    sent = [0]
    original = Connection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        if os.getpid() == pid:
            sent[0] += 1
        original(self, command, check_health)

    Connection.send_packed_command = counting  # type: ignore[method-assign]
    return sent


def run_worker(url: str, pool: bool, queues: tuple[str, ...], jobs: int, out: Path) -> None:
    """A forked worker that heartbeats as a pool worker with the default --stuck-timeout, for ``jobs`` jobs."""
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    status = 0
    try:
        from rq import Queue

        from django_rq_pool.common.heartbeat_rule import worker_heartbeat_kwargs

        sent = count_round_trips()
        connection = redis.Redis.from_url(url)
        worker = worker_class(pool)(
            [Queue(q, connection=connection) for q in queues],
            connection=connection,
            name=f"rt-{os.getpid()}",
            **worker_heartbeat_kwargs(120),
        )
        worker.work(logging_level="WARNING", max_jobs=jobs)
        out.write_text(str(sent[0]))
    except BaseException:
        status = 1
    finally:
        os._exit(status)


def one_run(url: str, pool: bool, queues: tuple[str, ...], jobs: int, tmp: Path) -> tuple[collections.Counter, int]:
    from rq import Queue

    client = redis.Redis.from_url(url)
    client.flushdb()
    low = Queue("low", connection=client)
    with client.pipeline() as pipe:
        for _ in range(jobs):
            low.enqueue("os.getpid", pipeline=pipe)
        pipe.execute()
    monitor = Monitor(url)
    monitor.start()
    wait_for(lambda: any(c.get("cmd") == "monitor" for c in client.client_list()), 10, "MONITOR")
    out = tmp / "round-trips"
    run_worker(url, pool, queues, jobs, out)
    monitor.stop = True
    client.ping()  # one more line so that the monitor thread sees the flag
    monitor.join(5)
    names = collections.Counter(command.split(" ", 1)[0].upper() for _, command, kind in monitor.lines if kind != "lua")
    names["PING"] -= 1
    return names, int(out.read_text())


def per_job(url: str, pool: bool, queues: tuple[str, ...], jobs: int, tmp: Path) -> tuple[dict[str, float], float]:
    small = max(1, jobs // 4)
    few, few_trips = one_run(url, pool, queues, small, tmp)
    many, many_trips = one_run(url, pool, queues, jobs, tmp)
    span = jobs - small
    commands = {name: (many[name] - few[name]) / span for name in many | few}
    return {k: v for k, v in commands.items() if abs(v) >= 0.05}, (many_trips - few_trips) / span


@cleans_up("python -m bench.roundtrips")
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    args = parser.parse_args()
    setup_django()
    with own_redis("bench-roundtrips-") as (url, tmp):
        for label, queues in QUEUE_LISTS.items():
            for pool in (False, True):
                commands, trips = per_job(url, pool, queues, args.jobs, tmp)
                total = sum(commands.values())
                shown = ", ".join(f"{k} {v:.2f}" for k, v in sorted(commands.items(), key=lambda kv: -kv[1]))
                who = "pool worker" if pool else "rq Worker"
                print(f"{label} {who}: {trips:.2f} worker round trips, {total:.2f} commands per job: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
