"""Where a job's time goes: plain timers around rq's phases, rq's worker against the pool's worker.

``python -m bench.perjob [--jobs N] [--rounds R]``: one process sets Django up on the bench app and
runs, in turns, a plain rq ``Worker`` and the pool's worker class (``PoolWorkerMixin`` over it, with
the pool's heartbeat settings and titles), each in burst mode over N trivial jobs. CPU time (not wall
time: the machine is shared) is summed per phase:

* worker: dequeue, fork (the parent's side of ``fork()``), reap (``monitor_work_horse``: waiting for
  the job child and recording its end), the rest of the loop;
* job child: start (from ``fork()`` to rq's ``perform_job``), the job, the result write (rest of
  ``perform_job``), all measured inside the child with its own CPU clock.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "bench" / "project"
PARENT_PHASES = ("dequeue", "fork", "reap", "loop")
CHILD_PHASES = ("child start", "job", "result write")


def timing_class(base: type, child_log: int) -> type:
    """``base`` with CPU timers around each phase; the job child's figures go to ``child_log``."""

    class Timed(base):  # type: ignore[misc, valid-type]
        phase_cpu: dict[str, float]

        def _timed(self, phase: str, call: Any, *args: Any) -> Any:
            start = time.thread_time()
            try:
                return call(*args)
            finally:
                self.phase_cpu[phase] += time.thread_time() - start

        def dequeue_job_and_maintain_ttl(self, *args: Any) -> Any:
            return self._timed("dequeue", super().dequeue_job_and_maintain_ttl, *args)

        def fork_work_horse(self, *args: Any) -> None:
            self._timed("fork", super().fork_work_horse, *args)

        def monitor_work_horse(self, *args: Any) -> None:
            self._timed("reap", super().monitor_work_horse, *args)

        def perform_job(self, job: Any, queue: Any) -> bool:
            started = time.process_time()  # the child's own clock: CPU since its fork
            perform = job.perform
            spent = [0.0]

            def timed_perform() -> Any:
                begin = time.process_time()
                try:
                    return perform()
                finally:
                    spent[0] = time.process_time() - begin

            job.perform = timed_perform
            try:
                return super().perform_job(job, queue)
            finally:
                total = time.process_time() - started
                os.write(child_log, f"{started} {spent[0]} {total - spent[0]}\n".encode())

    return Timed


def run_variant(name: str, jobs: int, child_path: Path) -> dict[str, float]:
    """CPU milliseconds per job in each phase for one burst of ``jobs`` trivial jobs."""
    import django_rq
    from rq import Worker

    from django_rq_pool.common import titles
    from django_rq_pool.common.heartbeat_rule import worker_heartbeat_kwargs
    from django_rq_pool.config.options import PoolOptions
    from django_rq_pool.worker.mixin import PoolWorkerMixin

    queue = django_rq.get_queue("bench")
    queue.empty()
    for _ in range(jobs):
        queue.enqueue("benchapp.jobs_trivial.noop", result_ttl=600)
    child_log = os.open(child_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND)
    kwargs: dict[str, Any] = {}
    if name == "rqpool":
        base = type("PoolWorker", (PoolWorkerMixin, Worker), {})
        kwargs = worker_heartbeat_kwargs(PoolOptions().stuck_timeout)
        titles.forks_become(titles.titled("worker-child", "forked by the bench"))
    else:
        base = Worker
        titles.forks_become("")
    worker = django_rq.get_worker("bench", worker_class=timing_class(base, child_log), **kwargs)
    worker.phase_cpu = defaultdict(float)
    start_cpu, start_children = time.thread_time(), os.times()
    worker.work(burst=True, logging_level="WARNING")
    total = time.thread_time() - start_cpu
    children = os.times()
    os.close(child_log)
    per_job = {phase: worker.phase_cpu[phase] * 1000 / jobs for phase in PARENT_PHASES[:-1]}
    per_job["loop"] = (total - sum(worker.phase_cpu.values())) * 1000 / jobs
    rows = [list(map(float, line.split())) for line in child_path.read_text().splitlines()]
    for index, phase in enumerate(CHILD_PHASES):
        per_job[phase] = sum(row[index] for row in rows) * 1000 / jobs
    child_total = (children.children_user + children.children_system) - (
        start_children.children_user + start_children.children_system
    )
    per_job["child exit"] = child_total * 1000 / jobs - sum(per_job[p] for p in CHILD_PHASES)
    return per_job


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perjob", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="turns of each variant, alternated")
    parser.add_argument("--state-mb", type=float, default=150.0)
    args = parser.parse_args(argv)
    sys.path[:0] = [str(ROOT), str(PROJECT)]
    from tests.harness import RedisServer, redis_server_binary

    with tempfile.TemporaryDirectory(prefix="rqpool-perjob-") as tmp:
        server = RedisServer(redis_server_binary(), Path(tmp))
        server.start()
        try:
            os.environ.update(
                BENCH_REDIS_URL=f"redis://127.0.0.1:{server.port}/0",
                BENCH_STATE_MB=str(args.state_mb),
                DJANGO_SETTINGS_MODULE="benchsite.settings",
            )
            import django

            django.setup()
            from django_rq_pool.common import titles

            titles.install("bench")
            results: dict[str, list[dict[str, float]]] = defaultdict(list)
            for _ in range(args.rounds):
                for name in ("rq", "rqpool"):
                    results[name].append(run_variant(name, args.jobs, Path(tmp) / "child.log"))
        finally:
            server.stop()
    phases = [*PARENT_PHASES, *CHILD_PHASES, "child exit"]
    print(f"CPU ms per trivial job, median of {args.rounds} rounds of {args.jobs} jobs")
    print(f"{'phase':<14}{'rq Worker':>11}{'rqpool':>9}")
    for phase in [*phases, "total"]:
        row = []
        for name in ("rq", "rqpool"):
            runs = results[name]
            values = [sum(r[p] for p in phases) if phase == "total" else r[phase] for r in runs]
            row.append(statistics.median(values))
        print(f"{phase:<14}{row[0]:>11.2f}{row[1]:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
