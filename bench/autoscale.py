"""The autoscaling bench: burst, trickle, reaction and idle cost (docs/autoscaling.md).

``python -m bench.autoscale`` (about 15 minutes on 2 cores; ``--quick``: two minutes). Every figure is
read from outside the pool: worker processes (children of the master titled ``rq:worker:``) sampled
every 20 ms, rq's worker states in Redis, job timestamps, and CPU times from /proc. Results go to
``bench/results/autoscale.json`` and ``.md``. The machine may be shared: compare figures as ratios
within one run.

* burst: N jobs of ``sleep(0.05)`` enqueued at once (in pipelines of 20) on ``{min: 1, max: 16}``,
  against fixed pools of 16 and 1: time to drain; worker-seconds (workers alive x time, from each
  worker's fork) against busy worker-seconds (workers in rq's ``busy`` state x time: the job child's
  fork, the job and its reaping), both over the drain; and the jobs' own time (started to ended);
* trickle: 2 jobs/s for T seconds: the average number of workers, autoscaled against fixed 16;
* reaction: from the burst's first enqueue to 8 workers busy (KEDA polls every 30 s by default), and
  where the time goes: the control child's decision (its log line), the first and the 16th worker
  forked, 8 workers listening, 8 busy;
* idle cost: CPU of the control child over a window with 3 autoscaled lists, against 3 fixed lists.
"""

from __future__ import annotations

import argparse
import calendar
import json
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import redis
from rq import Queue
from rq.job import Job
from rq.registry import FinishedJobRegistry

from .cleanup import cleans_up
from .contenders import PROJECT, Contender, Running, contender_env
from .measure import cpu_seconds, wait_until, workers
from .redis_server import own_redis

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
NAP = "benchapp.jobs_sleep.nap"
CONFIGS = {
    "autoscaled": "bench: {min: 1, max: 16}\n",
    "fixed-16": "bench: 16\n",
    "fixed-1": "bench: 1\n",
    "idle-autoscaled": "bench: {min: 1, max: 16}\nbench2: {min: 0, max: 4}\nbench3: {min: 1, max: 8}\n",
    "idle-fixed": "bench: 1\nbench2: 0\nbench3: 1\n",
}
PHASES = {
    "burst": ("autoscaled", "fixed-16", "fixed-1"),
    "trickle": ("autoscaled", "fixed-16"),
    "idle": ("idle-autoscaled", "idle-fixed"),
}
ENQUEUE_CHUNK = 20
DECISION = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) .*autoscale \[bench\] scale up")


def first_decision(log: Path, since: float) -> float | None:
    """Seconds from ``since`` (wall clock) to the control child's first scale-up line in the pool's log.

    The log's times are in the project's time zone (Django sets ``TZ``): read as UTC, they differ
    from the true time by a whole number of quarter hours, which is taken off.
    """
    for line in log.read_text(errors="replace").splitlines():
        found = DECISION.match(line)
        if found:
            stamp = calendar.timegm(time.strptime(found[1], "%Y-%m-%d %H:%M:%S")) + int(found[2]) / 1000
            zone = round((stamp - since) / 900) * 900
            if stamp - zone >= since - 0.001:
                return stamp - zone - since
    return None


WORKER_TITLES = ("rq:worker:", "rqpool-worker[", "rqpool-child[")  # rq's title, then the pool's while it boots


def worker_count(master: int) -> int:
    """The master's workers, from their fork on (a new worker is titled ``rqpool-child`` at once)."""
    try:
        children = psutil.Process(master).children()
    except psutil.Error:
        return 0
    count = 0
    for child in children:
        try:
            count += child.cmdline()[0].startswith(WORKER_TITLES)
        except (psutil.Error, IndexError):
            continue
    return count


class Sampler(threading.Thread):
    """Every 20 ms: the pool's worker processes and how many of them rq shows as ``busy``.

    rq's ``busy`` runs from the dequeued job's preparation in the worker, through the job child's
    fork and the job, to the child's reaping; ``idle`` covers the dequeue and ``started`` a worker
    still booting. Both counts come from the same instant, so their integrals compare directly:
    worker-seconds (workers alive x time) against busy worker-seconds (workers in a job x time).
    """

    def __init__(self, master: int, client: redis.Redis):
        super().__init__(daemon=True)
        self.master = master
        self.client = client
        self.samples: list[tuple[float, int, int]] = []  # (monotonic time, workers, busy)
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            alive = worker_count(self.master)
            busy = sum(w["state"] == "busy" for w in workers(self.client).values())
            self.samples.append((time.monotonic(), alive, busy))
            time.sleep(0.02)

    def stop(self) -> list[tuple[float, int, int]]:
        self.stopped.set()
        self.join()
        return self.samples

    def integral(self, start: float, end: float, column: int = 1) -> float:
        """Worker-seconds (column 1) or busy worker-seconds (column 2) between ``start`` and ``end``."""
        total = 0.0
        for before, after in zip(self.samples, self.samples[1:], strict=False):
            lo, hi = max(before[0], start), min(after[0], end)
            if hi > lo:
                total += before[column] * (hi - lo)
        return total

    def mean(self, start: float, end: float) -> float:
        return self.integral(start, end) / (end - start)


class Reaction(threading.Thread):
    """Every 5 ms from the burst's first enqueue: when each step towards 8 busy workers is first reached."""

    MILESTONES = ("first_fork_s", "all_forked_s", "listening_8_s", "reaction_8_busy_s")

    def __init__(self, master: int, client: redis.Redis, start: float):
        super().__init__(daemon=True)
        self.master = master
        self.client = redis.Redis(connection_pool=client.connection_pool)
        self.start_time = start
        self.initial = worker_count(master)
        self.reached: dict[str, float] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set() and len(self.reached) < len(self.MILESTONES):
            alive = worker_count(self.master)
            states = [w["state"] for w in workers(self.client).values()]
            elapsed = time.monotonic() - self.start_time
            steps = (
                alive > self.initial,
                alive >= 16,
                sum(state in ("idle", "busy") for state in states) >= 8,
                sum(state == "busy" for state in states) >= 8,
            )
            for key, done in zip(self.MILESTONES, steps, strict=True):
                if done:
                    self.reached.setdefault(key, elapsed)
            time.sleep(0.005)

    def stop(self) -> dict[str, float]:
        self.stopped.set()
        self.join()
        return self.reached


class AutoscaleBench:
    def __init__(self, args: argparse.Namespace, redis_url: str, workdir: Path):
        self.args = args
        self.workdir = workdir
        self.client = redis.Redis.from_url(redis_url)
        # BENCH_PRELOAD: the same for every contender; the realistic jobs' imports are not needed here
        self.env = contender_env(redis_url, "30", BENCH_PRELOAD="0")
        self.results: dict[str, Any] = {"settings": {k: str(v) for k, v in vars(args).items()}}

    def say(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def launch(self, name: str, ready: int) -> Running:
        self.client.flushall()
        config = self.workdir / f"{name}.yml"
        config.write_text(CONFIGS.get(name) or f"bench: {int(name.removeprefix('fixed-'))}\n")
        contender = Contender(name, name, "rqpool")
        running = Running(contender, self.env, self.workdir / f"{name}.log")
        running.start([sys.executable, str(PROJECT / "manage.py"), "rqpool", "-c", str(config), "-v", "1"])
        try:
            wait_until(lambda: worker_count(running.master_pid) >= ready, 120, f"{name}: {ready} workers")
            wait_until(lambda: self.client.scard("rqpool:pools") >= 1, 60, f"{name}: the registry record")
        except TimeoutError:
            running.stop()
            raise RuntimeError(f"{name}: the pool did not start; see {running.log}") from None
        time.sleep(1.0)  # let the starting count settle
        return running

    def burst(self, name: str) -> dict[str, float]:
        running = self.launch(name, int(name.removeprefix("fixed-")) if name.startswith("fixed-") else 1)
        try:
            sampler = Sampler(running.master_pid, self.client)
            sampler.start()
            queue = Queue("bench", connection=self.client)
            wall, start = time.time(), time.monotonic()
            reaction = Reaction(running.master_pid, self.client, start)
            reaction.start()
            for first in range(
                0, self.args.jobs, ENQUEUE_CHUNK
            ):  # the first jobs land at once, not after 2,000 are built
                with self.client.pipeline(transaction=False) as pipe:
                    for _ in range(min(ENQUEUE_CHUNK, self.args.jobs - first)):
                        queue.enqueue(NAP, 0.05, pipeline=pipe)
                    pipe.execute()
            enqueued = time.monotonic() - start
            registry = FinishedJobRegistry("bench", connection=self.client)
            while registry.count < self.args.jobs:
                if time.monotonic() - start > 900:
                    raise TimeoutError(f"{name}: burst not drained in 900 s")
                time.sleep(0.01)
            end = time.monotonic()
            sampler.stop()
            milestones = reaction.stop()
            decided = first_decision(running.log, wall)
            jobs = Job.fetch_many(registry.get_job_ids(), connection=self.client)
            job_time = sum(
                (j.ended_at - j.started_at).total_seconds() for j in jobs if j and j.started_at and j.ended_at
            )
            return {
                "drain_s": end - start,
                "worker_seconds": sampler.integral(start, end),
                "busy_seconds": sampler.integral(start, end, column=2),
                "job_seconds": job_time,
                "enqueued_s": enqueued,
                "decision_s": decided if decided is not None else float("nan"),
                **{key: milestones.get(key, float("nan")) for key in Reaction.MILESTONES},
                "peak_workers": max(sample[1] for sample in sampler.samples),
            }
        finally:
            running.stop()

    def trickle(self, name: str) -> dict[str, float]:
        running = self.launch(name, 16 if name == "fixed-16" else 1)
        try:
            sampler = Sampler(running.master_pid, self.client)
            sampler.start()
            queue = Queue("bench", connection=self.client)
            start = time.monotonic()
            sent = 0
            while (now := time.monotonic()) - start < self.args.trickle_seconds:
                if sent < (now - start) * 2:
                    queue.enqueue(NAP, 0.05)
                    sent += 1
                time.sleep(0.005)
            end = time.monotonic()
            sampler.stop()
            return {"mean_workers": sampler.mean(start, end), "jobs": sent}
        finally:
            running.stop()

    def idle(self, name: str) -> dict[str, float]:
        running = self.launch(name, 2)
        try:
            master = psutil.Process(running.master_pid)
            control = next(c for c in master.children() if c.cmdline()[0].startswith("rqpool-control"))
            time.sleep(2.0)
            before = (
                cpu_seconds(control.pid),
                cpu_seconds(master.pid),
                self.client.info("stats")["total_commands_processed"],
            )
            time.sleep(self.args.idle_seconds)
            after = (
                cpu_seconds(control.pid),
                cpu_seconds(master.pid),
                self.client.info("stats")["total_commands_processed"],
            )
            per_minute = 60.0 / self.args.idle_seconds
            return {
                "control_cpu_s_per_min": (after[0] - before[0]) * per_minute,
                "master_cpu_s_per_min": (after[1] - before[1]) * per_minute,
                "redis_commands_per_s": (after[2] - before[2]) / self.args.idle_seconds,
            }
        finally:
            running.stop()

    def run(self) -> None:
        for phase, names in PHASES.items():
            extra = tuple(
                n.split(":")[1] for n in self.args.only if n.startswith(f"{phase}:fixed-")
            )  # e.g. burst:fixed-4
            for name in dict.fromkeys(names + extra):
                if self.args.only and name not in self.args.only and f"{phase}:{name}" not in self.args.only:
                    continue
                figures = {**getattr(self, phase)(name), "load": os.getloadavg()[0]}
                self.results.setdefault(phase, {})[name] = figures
                self.say(f"{phase} {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()))
                self.save()

    def save(self) -> None:
        self.args.out.mkdir(parents=True, exist_ok=True)
        (self.args.out / "autoscale.json").write_text(json.dumps(self.results, indent=1))


def report(results: dict[str, Any]) -> str:
    burst, trickle, idle = results["burst"], results["trickle"], results["idle"]
    auto, fixed16, fixed1 = burst["autoscaled"], burst["fixed-16"], burst["fixed-1"]
    lines = [
        "# Autoscaling bench",
        "",
        f"{results['settings']['jobs']} jobs of sleep(0.05) for the burst, 2 jobs/s for "
        f"{results['settings']['trickle_seconds']} s for the trickle, {results['settings']['idle_seconds']} s idle. "
        "One run on a shared 2-core machine: read the ratios, not the absolute figures.",
        "",
        "| figure | autoscaled {min: 1, max: 16} | fixed 16 | fixed 1 | ratio | target | met |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]

    def row(what: str, a: float, b: float, c: float | str, ratio: float, target: str, met: bool) -> None:
        third = c if isinstance(c, str) else f"{c:.2f}"
        lines.append(f"| {what} | {a:.2f} | {b:.2f} | {third} | {ratio:.2f}x | {target} | {'yes' if met else 'no'} |")

    drain = auto["drain_s"] / fixed16["drain_s"]
    row(
        "burst: time to drain, s",
        auto["drain_s"],
        fixed16["drain_s"],
        fixed1["drain_s"],
        drain,
        "<= 1.2x fixed 16",
        drain <= 1.2,
    )
    used = auto["worker_seconds"] / auto["busy_seconds"]
    row(
        "burst: worker-seconds / busy worker-seconds (rq's busy state)",
        used,
        fixed16["worker_seconds"] / fixed16["busy_seconds"],
        fixed1["worker_seconds"] / fixed1["busy_seconds"],
        used,
        "<= 1.1x",
        used <= 1.1,
    )
    mean = trickle["autoscaled"]["mean_workers"]
    row(
        "trickle: mean workers",
        mean,
        trickle["fixed-16"]["mean_workers"],
        "-",
        mean / trickle["fixed-16"]["mean_workers"],
        "<= 2.5 workers",
        mean <= 2.5,
    )
    reaction = auto["reaction_8_busy_s"]
    row(
        "reaction: first enqueue to 8 busy, s",
        reaction,
        fixed16["reaction_8_busy_s"],
        "-",
        reaction / 30.0,
        "<= 1 s (KEDA: 30 s polling)",
        reaction <= 1.0,
    )
    cost = idle["idle-autoscaled"]["control_cpu_s_per_min"]
    base = idle["idle-fixed"]["control_cpu_s_per_min"]
    row("idle: control child CPU s/min, 3 lists", cost, base, "-", cost / base if base else float("nan"), "small", True)
    lines += [
        "",
        "Burst, where the worker time goes (seconds over the drain):",
        "",
        "| | autoscaled | fixed 16 | fixed 1 |",
        "| --- | --- | --- | --- |",
    ]
    for key, what in (
        ("worker_seconds", "worker-seconds (workers alive x time)"),
        ("busy_seconds", "busy worker-seconds (rq's busy: job child's fork, job, reaping)"),
        ("job_seconds", "the jobs' own time (started to ended, in the job child)"),
        ("peak_workers", "peak workers"),
        ("load", "load average (1 min) at the end"),
    ):
        lines.append(
            f"| {what} | "
            + " | ".join(f"{figures.get(key, float('nan')):.1f}" for figures in (auto, fixed16, fixed1))
            + " |"
        )
    lines += [
        "",
        "Reaction, seconds from the burst's first enqueue (the first job lands at once):",
        "",
        "| step | autoscaled | fixed 16 |",
        "| --- | --- | --- |",
    ]
    for key, what in (
        ("decision_s", "the control child decides (its log line)"),
        ("first_fork_s", "the first new worker forked"),
        ("all_forked_s", "16 workers forked"),
        ("listening_8_s", "8 workers listening"),
        ("reaction_8_busy_s", "8 workers busy"),
        ("enqueued_s", "all jobs enqueued"),
    ):
        lines.append(
            f"| {what} | " + " | ".join(f"{figures.get(key, float('nan')):.2f}" for figures in (auto, fixed16)) + " |"
        )
    redis_rate = idle["idle-autoscaled"]["redis_commands_per_s"]
    lines.append(
        f"\nIdle Redis commands per second (every client, the pool's control child included): "
        f"{redis_rate:.1f} autoscaled, {idle['idle-fixed']['redis_commands_per_s']:.1f} fixed. "
        f"Master CPU idle: {idle['idle-autoscaled']['master_cpu_s_per_min']:.3f} s/min autoscaled, "
        f"{idle['idle-fixed']['master_cpu_s_per_min']:.3f} fixed."
    )
    return "\n".join(lines) + "\n"


@cleans_up("python -m bench.autoscale")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.autoscale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small settings to check the bench works")
    parser.add_argument(
        "--out", type=Path, help="results directory (default bench/results; --quick: bench/results/quick)"
    )
    parser.add_argument(
        "--only", nargs="+", default=[], help="run only these (e.g. burst:autoscaled, or a config name in every phase)"
    )
    parser.add_argument("--jobs", type=int, help="jobs in the burst (default 2000; --quick: 200)")
    args = parser.parse_args(argv)
    args.out = args.out or (RESULTS / "quick" if args.quick or args.only else RESULTS)
    args.jobs = args.jobs or (200 if args.quick else 2000)
    args.trickle_seconds = 10.0 if args.quick else 60.0
    args.idle_seconds = 10.0 if args.quick else 60.0
    with own_redis("rqpool-autoscale-bench-") as (url, tmp):
        AutoscaleBench(args, url, tmp).run()
    results = json.loads((args.out / "autoscale.json").read_text())
    if all(phase in results for phase in PHASES):
        (args.out / "autoscale.md").write_text(report(results))
        print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
