"""Where a job's time goes: plain timers around rq's phases, rq's worker against the pool's worker.

``python -m bench.perjob [--jobs N] [--rounds R] [--job django_heavy]``: one process sets Django up
on the bench app, preloads and warms it as rqpool's master does, and runs, in turns, a plain rq ``Worker`` and
the pool's worker class (``PoolWorkerMixin`` over it, with the pool's heartbeat settings and titles),
each in burst mode over N jobs. CPU time (not wall
time: the machine is shared) is summed per phase:

* worker: dequeue, fork (the parent's side of ``fork()``), reap (``monitor_work_horse``: waiting for
  the job child and recording its end), the rest of the loop;
* job child: start (from ``fork()`` to rq's ``perform_job``), the job, the result write (rest of
  ``perform_job``), all measured inside the child with its own CPU clock.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from .cleanup import cleans_up, keep_stop_signals

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

        def _install_signal_handlers(self) -> None:
            super()._install_signal_handlers()
            keep_stop_signals()  # TERM, INT and HUP stop the bench and all it started, not just this burst

        def dequeue_job_and_maintain_ttl(self, *args: Any) -> Any:
            return self._timed("dequeue", super().dequeue_job_and_maintain_ttl, *args)

        def fork_work_horse(self, *args: Any) -> None:
            self._timed("fork", super().fork_work_horse, *args)

        def monitor_work_horse(self, *args: Any) -> None:
            self._timed("reap", super().monitor_work_horse, *args)

        def perform_job(self, job: Any, queue: Any) -> bool:
            started = time.process_time()  # the child's own clock: CPU since its fork
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt  # pages copied since the fork
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
                os.write(child_log, f"{started} {spent[0]} {total - spent[0]} {faults}\n".encode())

    return Timed


JOBS = {"trivial": ("benchapp.jobs_trivial.noop", ()), "django_heavy": ("benchapp.jobs_realistic.django_heavy", (1,))}


def run_variant(name: str, jobs: int, child_path: Path, job: str = "trivial") -> dict[str, float]:
    """CPU milliseconds per job in each phase for one burst of ``jobs`` jobs of one kind."""
    import django_rq
    from rq import Worker

    from django_rq_pool.common import titles
    from django_rq_pool.common.heartbeat_rule import worker_heartbeat_kwargs
    from django_rq_pool.config.options import PoolOptions
    from django_rq_pool.worker.mixin import PoolWorkerMixin

    queue = django_rq.get_queue("bench")
    queue.empty()
    for _ in range(jobs):
        queue.enqueue(JOBS[job][0], *JOBS[job][1], result_ttl=600)
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
    start_faults = resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt
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
    per_job["faults at start"] = sum(row[3] for row in rows) / jobs
    per_job["faults in child"] = (resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt - start_faults) / jobs
    return per_job


def run_launched(key: str, jobs: int, workdir: Path, env: dict[str, str]) -> dict[str, float]:
    """CPU ms per job of a launched contender with one worker: its master, its worker, the job children."""
    import psutil
    import redis
    from rq import Queue

    from .contenders import CONTENDERS, Running
    from .measure import idle_names, wait_until, workers

    client = redis.Redis.from_url(env["BENCH_REDIS_URL"])
    client.flushall()
    contender = next(c for c in CONTENDERS if c.key == key)
    running = Running.launch(contender, 1, workdir, env)
    try:
        wait_until(lambda: idle_names(client), 120, "an idle worker")
        time.sleep(1)
        master = psutil.Process(running.master_pid)
        worker = psutil.Process(int(next(iter(workers(client).values()))["pid"]))
        before = {"master": master.cpu_times(), "worker": worker.cpu_times()}
        queue = Queue("bench", connection=client)
        queue.enqueue_many([Queue.prepare_data("benchapp.jobs_trivial.noop", result_ttl=600) for _ in range(jobs)])
        wait_until(lambda: queue.finished_job_registry.count >= jobs, 300, "the jobs done", interval=0.1)
        wait_until(lambda: idle_names(client), 60, "the worker idle again")
        after = {"master": master.cpu_times(), "worker": worker.cpu_times()}
    finally:
        running.stop()

    def own(name: str) -> float:
        return after[name].user + after[name].system - before[name].user - before[name].system

    children = (
        after["worker"].children_user
        + after["worker"].children_system
        - before["worker"].children_user
        - before["worker"].children_system
    )
    return {
        "master": own("master") * 1000 / jobs,
        "worker": own("worker") * 1000 / jobs,
        "job children": children * 1000 / jobs,
    }


@cleans_up("python -m bench.perjob")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perjob", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="turns of each variant, alternated")
    parser.add_argument("--state-mb", type=float, default=150.0)
    parser.add_argument("--no-launch", action="store_true", help="only the phase timers, not the launched contenders")
    parser.add_argument("--job", choices=JOBS, default="trivial", help="the job of the phase timers")
    parser.add_argument("--parts", action="store_true", help="the Django-heavy job's parts instead (bench.jobparts)")
    parser.add_argument("--freeze", action="store_true", help="--parts: gc.freeze() in the worker before each fork")
    args = parser.parse_args(argv)
    sys.path[:0] = [str(ROOT), str(PROJECT)]
    if args.parts:
        from . import jobparts

        os.environ.update(BENCH_STATE_MB=str(args.state_mb), DJANGO_SETTINGS_MODULE="benchsite.settings")
        return jobparts.run(args.rounds, args.freeze)
    from .redis_server import own_server

    with own_server("rqpool-perjob-") as server:
        tmp = server.workdir
        os.environ.update(
            BENCH_REDIS_URL=f"redis://127.0.0.1:{server.port}/0",
            BENCH_STATE_MB=str(args.state_mb),
            DJANGO_SETTINGS_MODULE="benchsite.settings",
        )
        from .jobparts import boot

        boot()  # as rqpool's master does before forking: preloaded, warmed, frozen
        gc.enable()  # as in a worker: this process runs the workers
        from django_rq_pool.common import titles

        titles.install("bench")
        results: dict[str, list[dict[str, float]]] = defaultdict(list)
        launched: dict[str, list[dict[str, float]]] = defaultdict(list)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for _ in range(args.rounds):
            for name in ("rq", "rqpool"):
                results[name].append(run_variant(name, args.jobs, tmp / "child.log", args.job))
            for key in () if args.no_launch else ("rqworker-pool", "rqpool"):
                launched[key].append(run_launched(key, args.jobs, tmp, env))
    phases = [*PARENT_PHASES, *CHILD_PHASES, "child exit"]
    print(f"CPU ms per {args.job} job, median of {args.rounds} rounds of {args.jobs} jobs")
    print(f"{'phase':<14}{'rq Worker':>11}{'rqpool':>9}")
    for phase in [*phases, "total", "faults at start", "faults in child"]:
        row = []
        for name in ("rq", "rqpool"):
            runs = results[name]
            values = [sum(r[p] for p in phases) if phase == "total" else r[phase] for r in runs]
            row.append(statistics.median(values))
        print(f"{phase:<14}{row[0]:>11.2f}{row[1]:>9.2f}")
    if args.no_launch:
        return 0
    print(f"\nCPU ms per trivial job, one worker launched, median of {args.rounds} rounds of {args.jobs} jobs")
    print(f"{'process':<14}{'rqworker-pool':>14}{'rqpool':>9}")
    for part in ("master", "worker", "job children", "total"):
        row = [
            statistics.median(sum(r.values()) if part == "total" else r[part] for r in launched[key])
            for key in ("rqworker-pool", "rqpool")
        ]
        print(f"{part:<14}{row[0]:>14.2f}{row[1]:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
