"""The autoscaling bench: burst, trickle, reaction and idle cost (docs/autoscaling.md).

``python -m bench.autoscale`` (about 8 minutes on 2 cores; ``--quick``: a minute). Every figure is
read from outside the pool: worker processes (children of the master titled ``rq:worker:``) sampled
every 20 ms, rq's worker states in Redis, job timestamps, and CPU times from /proc. Results go to
``bench/results/autoscale.json`` and ``.md``. The machine may be shared: compare figures as ratios
within one run.

* burst: N jobs of ``sleep(0.05)`` enqueued at once on ``{min: 1, max: 16}``, against fixed pools of
  16 and 1: time to drain, worker-seconds used while draining, and the jobs' own busy time;
* trickle: 2 jobs/s for T seconds: the average number of workers, autoscaled against fixed 16;
* reaction: from the burst's first enqueue to 8 workers busy (KEDA polls every 30 s by default);
* idle cost: CPU of the control child over a window with 3 autoscaled lists, against 3 fixed lists.
"""

from __future__ import annotations

import argparse
import json
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


def worker_count(master: int) -> int:
    try:
        children = psutil.Process(master).children()
    except psutil.Error:
        return 0
    count = 0
    for child in children:
        try:
            count += child.cmdline()[0].startswith("rq:worker:")
        except (psutil.Error, IndexError):
            continue
    return count


class Sampler(threading.Thread):
    """Counts the pool's workers every 20 ms; .integral() is worker-seconds."""

    def __init__(self, master: int):
        super().__init__(daemon=True)
        self.master = master
        self.samples: list[tuple[float, int]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.samples.append((time.monotonic(), worker_count(self.master)))
            time.sleep(0.02)

    def stop(self) -> list[tuple[float, int]]:
        self.stopped.set()
        self.join()
        return self.samples

    def integral(self, start: float, end: float) -> float:
        total = 0.0
        for (t0, n), (t1, _) in zip(self.samples, self.samples[1:], strict=False):
            lo, hi = max(t0, start), min(t1, end)
            if hi > lo:
                total += n * (hi - lo)
        return total

    def mean(self, start: float, end: float) -> float:
        return self.integral(start, end) / (end - start)


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
        config.write_text(CONFIGS[name])
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
        running = self.launch(name, 16 if name == "fixed-16" else 1)
        try:
            sampler = Sampler(running.master_pid)
            sampler.start()
            queue = Queue("bench", connection=self.client)
            start = time.monotonic()
            with self.client.pipeline(transaction=False) as pipe:
                for _ in range(self.args.jobs):
                    queue.enqueue(NAP, 0.05, pipeline=pipe)
                pipe.execute()
            reaction = None
            registry = FinishedJobRegistry("bench", connection=self.client)
            while registry.count < self.args.jobs:
                if reaction is None and sum(w["state"] == "busy" for w in workers(self.client).values()) >= 8:
                    reaction = time.monotonic() - start
                if time.monotonic() - start > 900:
                    raise TimeoutError(f"{name}: burst not drained in 900 s")
                time.sleep(0.01)
            end = time.monotonic()
            sampler.stop()
            jobs = Job.fetch_many(registry.get_job_ids(), connection=self.client)
            busy = sum((j.ended_at - j.started_at).total_seconds() for j in jobs if j and j.started_at and j.ended_at)
            return {
                "drain_s": end - start,
                "worker_seconds": sampler.integral(start, end),
                "busy_seconds": busy,
                "reaction_8_busy_s": reaction if reaction is not None else float("nan"),
                "peak_workers": max(n for _, n in sampler.samples),
            }
        finally:
            running.stop()

    def trickle(self, name: str) -> dict[str, float]:
        running = self.launch(name, 16 if name == "fixed-16" else 1)
        try:
            sampler = Sampler(running.master_pid)
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
        for phase, names in (
            ("burst", ("autoscaled", "fixed-16", "fixed-1")),
            ("trickle", ("autoscaled", "fixed-16")),
            ("idle", ("idle-autoscaled", "idle-fixed")),
        ):
            for name in names:
                figures = getattr(self, phase)(name)
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
        "burst: worker-seconds / own busy time",
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
    redis_rate = idle["idle-autoscaled"]["redis_commands_per_s"]
    lines.append(
        f"\nIdle Redis commands per second (every client, the pool's control child included): "
        f"{redis_rate:.1f} autoscaled, {idle['idle-fixed']['redis_commands_per_s']:.1f} fixed. "
        f"Master CPU idle: {idle['idle-autoscaled']['master_cpu_s_per_min']:.3f} s/min autoscaled, "
        f"{idle['idle-fixed']['master_cpu_s_per_min']:.3f} fixed. Peak workers in the burst: "
        f"{auto['peak_workers']:.0f} autoscaled."
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.autoscale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small settings to check the bench works")
    parser.add_argument(
        "--out", type=Path, help="results directory (default bench/results; --quick: bench/results/quick)"
    )
    args = parser.parse_args(argv)
    args.out = args.out or (RESULTS / "quick" if args.quick else RESULTS)
    args.jobs = 200 if args.quick else 2000
    args.trickle_seconds = 10.0 if args.quick else 60.0
    args.idle_seconds = 10.0 if args.quick else 60.0
    with own_redis("rqpool-autoscale-bench-") as (url, tmp):
        AutoscaleBench(args, url, tmp).run()
    results = json.loads((args.out / "autoscale.json").read_text())
    (args.out / "autoscale.md").write_text(report(results))
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
