"""Run every contender against one private redis-server and write the results.

``python -m bench`` (full run, about 20 minutes on 2 cores) or ``python -m bench --quick`` (a
minute: small app, few jobs, one repeat; for working on the suite). Results go to
``bench/results/`` (``--quick``: ``bench/results/quick/``): ``results.json``, ``results.md``,
``memory.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import redis
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry

from .cleanup import cleans_up
from .contenders import CONTENDERS, Contender, Running, contender_env
from .measure import cpu_seconds, idle_names, total_memory, tree_cpu_seconds, wait_until, workers
from .redis_server import own_redis
from .report import machine, write_report

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
JOB_FUNCS = {
    "trivial": ("benchapp.jobs_trivial.noop", ()),
    "realistic": ("benchapp.jobs_realistic.report", ("2026-11-29",)),
    "django_heavy": ("benchapp.jobs_realistic.django_heavy", (42,)),
}
SETTLE = 1.0
LATENCY_GAP = 0.02  # seconds between two enqueues of the latency phase: every worker is idle when a job comes
MIN_UPTIME = 6.0  # rqpool counts a worker that dies within 5 s of its fork as a failed start (and backs off)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small settings to check the suite works")
    parser.add_argument("--repeats", type=int, help="runs per figure (default 3; --quick 1)")
    parser.add_argument("--big-repeats", type=int, help="runs at the largest N (default: --repeats)")
    parser.add_argument("--sizes", help="comma-separated worker counts for start-up and memory (default 4,8,32)")
    parser.add_argument("--jobs", type=int, help="jobs per throughput batch (default 2000)")
    parser.add_argument(
        "--batch-cap",
        type=float,
        default=0.0,
        help="seconds a batch may run; slower contenders are measured on the jobs done by then (default 0: no cap)",
    )
    parser.add_argument("--idle-seconds", type=float, help="idle window for the masters' CPU (default 60)")
    parser.add_argument("--state-mb", type=float, help="MB of objects the app loads at django.setup() (default 150)")
    parser.add_argument("--only", help="comma-separated contender keys: " + ", ".join(c.key for c in CONTENDERS))
    parser.add_argument("--phases", default="startup,throughput,idle,latency", help="which phases to run")
    parser.add_argument("--latency-jobs", type=int, help="jobs enqueued one by one for the latency (default 500)")
    parser.add_argument(
        "--batches",
        default="trivial,realistic",
        help=f"which job batches the throughput phase runs, in order, in one launch: {', '.join(JOB_FUNCS)}",
    )
    parser.add_argument("--out", type=Path, help="results directory")
    args = parser.parse_args(argv)
    quick = args.quick
    args.repeats = args.repeats or (1 if quick else 3)
    args.big_repeats = args.big_repeats or args.repeats
    args.sizes = [int(n) for n in (args.sizes or ("2,4" if quick else "4,8,32")).split(",")]
    args.jobs = args.jobs or (100 if quick else 2000)
    args.idle_seconds = args.idle_seconds or (5.0 if quick else 60.0)
    args.latency_jobs = args.latency_jobs or (50 if quick else 500)
    args.state_mb = args.state_mb or (30.0 if quick else 150.0)
    args.out = args.out or (RESULTS / "quick" if quick else RESULTS)
    keys = args.only.split(",") if args.only else [c.key for c in CONTENDERS if c.by_default]
    args.contenders = [c for c in CONTENDERS if c.key in keys]
    args.phases = args.phases.split(",")
    args.batches = args.batches.split(",")
    return args


class Bench:
    """One run of the suite: a private Redis, the contenders, and the figures collected so far."""

    def __init__(self, args: argparse.Namespace, redis_url: str, workdir: Path):
        self.args = args
        self.workdir = workdir
        self.client = redis.Redis.from_url(redis_url)
        self.env = contender_env(redis_url, args.state_mb)
        self.results: dict[str, Any] = {
            "settings": {k: v for k, v in vars(args).items() if k not in ("contenders", "out")},
            "contenders": {c.key: c.label for c in args.contenders},
            "machine_before": machine(),
        }

    # -- helpers ---------------------------------------------------------------------------

    def say(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def record(self, *path: str, value: Any) -> None:
        node = self.results
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node.setdefault(path[-1], []).append(value)

    def save(self) -> None:
        self.args.out.mkdir(parents=True, exist_ok=True)
        (self.args.out / "results.json").write_text(json.dumps(self.results, indent=1))

    def rotated(self, repeat: int) -> list[Contender]:
        """A different contender goes first in each repeat, so none always runs on a cold cache."""
        order = list(self.args.contenders)
        shift = repeat % len(order)
        return order[shift:] + order[:shift]

    def launch_until_idle(self, contender: Contender, count: int) -> tuple[Running, float]:
        self.client.flushall()
        start = time.monotonic()
        running = Running.launch(contender, count, self.workdir, self.env)
        try:
            wait_until(lambda: len(idle_names(self.client)) >= count, 60 + 10 * count, f"{count} idle workers")
        except TimeoutError:
            running.stop()
            raise RuntimeError(f"{contender.key} x{count}: workers not idle; see {running.log}") from None
        return running, time.monotonic() - start

    # -- phases ----------------------------------------------------------------------------

    def attempt(self, what: str, run: Callable[[], str]) -> None:
        """One measured run; a failure is reported and recorded, and the suite goes on."""
        try:
            self.say(f"{what}: {run()}")
        except Exception as exc:
            self.say(f"{what}: FAILED: {exc}")
            self.results.setdefault("errors", []).append(f"{what}: {exc}")
        self.save()

    def startup(self) -> None:
        """(a) start-up, (b) idle memory at each N, (d) kill -9 to idle replacement at the largest N."""
        biggest = max(self.args.sizes)
        for count in self.args.sizes:
            repeats = self.args.big_repeats if count == biggest else self.args.repeats
            for repeat in range(repeats):
                for contender in self.rotated(repeat):
                    self.attempt(f"{contender.key} x{count}", lambda c=contender, n=count: self.startup_run(c, n))

    def startup_run(self, contender: Contender, count: int) -> str:
        running, elapsed = self.launch_until_idle(contender, count)
        try:
            time.sleep(SETTLE)
            memory = total_memory(running.pids())
            replaced = None
            if count == max(self.args.sizes):
                time.sleep(MIN_UPTIME - SETTLE)
                replaced = self.replacement(running)
        finally:
            running.stop()
        self.record("startup", contender.key, str(count), value=elapsed)
        self.record("idle_memory", contender.key, str(count), value=asdict(memory))
        line = f"idle after {elapsed:.2f}s, PSS {memory.pss:.0f} MiB"
        if replaced is not None:
            self.record("replacement", contender.key, value=replaced)
            line += f", replacement {replaced * 1000:.0f} ms"
        return line

    def replacement(self, running: Running) -> float:
        before = workers(self.client)
        victim_name = sorted(name for name, f in before.items() if f["state"] == "idle")[0]
        victim = int(before[victim_name]["pid"])
        start = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        if not running.contender.has_master:
            running.restart_separate_worker(victim)
        wait_until(lambda: idle_names(self.client, exclude=set(before)), 120, "an idle replacement")
        return time.monotonic() - start

    def run_jobs(self, kind: str) -> tuple[float, int, int]:
        """Enqueue a batch at once; jobs per second from the first enqueue until all are done or the cap.

        Returns (jobs per second, jobs done, jobs failed). At the cap, the rest of the batch is dropped
        from the queue and the jobs already running finish.
        """
        func, args = JOB_FUNCS[kind]
        queue = Queue("bench", connection=self.client)
        finished = FinishedJobRegistry(queue=queue)
        failed = FailedJobRegistry(queue=queue)
        base = finished.count + failed.count
        total = self.args.jobs
        start = time.monotonic()
        for first in range(0, total, 500):
            batch = [Queue.prepare_data(func, args, result_ttl=3600) for _ in range(min(500, total - first))]
            queue.enqueue_many(batch)
        deadline = start + self.args.batch_cap if self.args.batch_cap > 0 else float("inf")
        while finished.count + failed.count - base < total and time.monotonic() < deadline:
            time.sleep(0.05)
        done = finished.count + failed.count - base
        rate = done / (time.monotonic() - start)
        if done < total:
            queue.empty()
        return rate, done, failed.count

    def throughput(self) -> None:
        """(b) memory at idle and after the batches, (c) jobs per second, at N = 8 (or the middle size)."""
        count = 8 if 8 in self.args.sizes else self.args.sizes[len(self.args.sizes) // 2]
        self.results["throughput_workers"] = count
        for repeat in range(self.args.repeats):
            for contender in self.rotated(repeat):
                self.attempt(f"{contender.key} x{count} jobs", lambda c=contender: self.throughput_run(c, count))

    def throughput_run(self, contender: Contender, count: int) -> str:
        running, _ = self.launch_until_idle(contender, count)
        measured: list[tuple[tuple[str, ...], Any]] = []
        parts = []
        try:
            time.sleep(SETTLE)
            measured.append((("job_memory", contender.key, "idle"), asdict(total_memory(running.pids()))))
            for kind in self.args.batches:
                processes = running.processes()  # the master and workers: job children come and go
                cpu_before = tree_cpu_seconds(processes)
                rate, done, failures = self.run_jobs(kind)
                if failures:
                    raise RuntimeError(f"{failures} {kind} jobs failed; see {running.log}")
                wait_until(lambda: len(idle_names(self.client)) >= count, 60, "workers idle again")
                cpu_ms = (tree_cpu_seconds(processes) - cpu_before) * 1000 / max(done, 1)
                measured.append((("cpu_ms_per_job", contender.key, kind), cpu_ms))
                time.sleep(SETTLE)
                memory = total_memory(running.pids())
                measured.append((("jobs_per_second", contender.key, kind), rate))
                measured.append((("jobs_done", contender.key, kind), done))
                measured.append((("job_memory", contender.key, f"after_{kind}"), asdict(memory)))
                parts.append(f"{kind} {rate:.0f}/s ({done} done), PSS {memory.pss:.0f} USS {memory.uss:.0f}")
        finally:
            running.stop()
        cpu = {path[2]: value for path, value in measured if path[0] == "cpu_ms_per_job"}
        if cpu.get("trivial") and cpu.get("django_heavy"):
            # CPU per job of the pool's own processes, both batches on the same workers in one launch:
            # comparable on a loaded machine, where rates measured minutes apart are not.
            cost = cpu["django_heavy"] / cpu["trivial"]
            measured.append((("django_heavy_cost", contender.key), cost))
            parts.append(f"CPU/job {cpu['trivial']:.1f} ms trivial, {cpu['django_heavy']:.1f} ms heavy: {cost:.2f}x")
        for path, value in measured:  # only complete runs count: the lists stay aligned run by run
            self.record(*path, value=value)
        return "; ".join(parts)

    def idle_cpu(self) -> None:
        """(e) the masters' CPU seconds over the idle window, all pools idle side by side at N = 8."""
        masters = [c for c in self.args.contenders if c.has_master]
        for repeat in range(self.args.repeats):
            self.attempt(f"idle masters, run {repeat + 1}", lambda: self.idle_run(masters, 8))

    def idle_run(self, masters: list[Contender], count: int) -> str:
        self.client.flushall()
        pools: list[Running] = []
        try:
            for contender in masters:  # in the try: a failed launch stops the pools already up
                pools.append(Running.launch(contender, count, self.workdir, self.env))
            wanted = count * len(pools)
            wait_until(lambda: len(idle_names(self.client)) >= wanted, 300, "all pools idle")
            time.sleep(5 * SETTLE)
            before = [cpu_seconds(p.master_pid) for p in pools]
            time.sleep(self.args.idle_seconds)
            after = [cpu_seconds(p.master_pid) for p in pools]
        finally:
            for pool in pools:
                pool.stop()
        scale = 60.0 / self.args.idle_seconds
        used = {p.contender.key: (b - a) * scale for p, a, b in zip(pools, before, after, strict=True)}
        for key, value in used.items():
            self.record("master_cpu", key, value=value)
        return "CPU s/min " + ", ".join(f"{k} {v:.3f}" for k, v in used.items())

    def latency(self) -> None:
        """(g) pick-up latency: from ``enqueue`` returning to the job's ``started_at``, idle workers."""
        count = 8 if 8 in self.args.sizes else self.args.sizes[len(self.args.sizes) // 2]
        self.results["latency_workers"] = count
        for repeat in range(self.args.repeats):
            for contender in self.rotated(repeat):
                self.attempt(f"{contender.key} x{count} latency", lambda c=contender: self.latency_run(c, count))

    def latency_run(self, contender: Contender, count: int) -> str:
        """Trivial jobs enqueued one at a time, LATENCY_GAP apart; p50 and p99 of enqueue-to-start in ms.

        ``started_at`` is stamped by the job child (rq's ``perform_job``), so the figure covers the
        dequeue, the fork and the job child's start; both clocks are this machine's.
        """
        running, _ = self.launch_until_idle(contender, count)
        try:
            time.sleep(SETTLE)
            queue = Queue("bench", connection=self.client)
            func, args = JOB_FUNCS["trivial"]
            enqueued: dict[str, float] = {}
            for _ in range(self.args.latency_jobs):
                job = queue.enqueue(func, *args, result_ttl=3600)
                enqueued[job.id] = time.time()
                time.sleep(LATENCY_GAP)
            finished = FinishedJobRegistry(queue=queue)
            wait_until(lambda: finished.count >= len(enqueued), 60, "every latency job finished")
            jobs = Job.fetch_many(list(enqueued), connection=self.client)
        finally:
            running.stop()
        delays = sorted((job.started_at.timestamp() - enqueued[job.id]) * 1000 for job in jobs)
        p50, p99 = statistics.median(delays), delays[min(len(delays) - 1, round(0.99 * len(delays)) - 1)]
        self.record("latency_p50_ms", contender.key, value=p50)
        self.record("latency_p99_ms", contender.key, value=p99)
        return f"pick-up latency p50 {p50:.1f} ms, p99 {p99:.1f} ms"


@cleans_up("python -m bench")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with own_redis("rqpool-bench-") as (url, tmp):
        bench = Bench(args, url, tmp)
        bench.results["machine_before"]["redis"] = bench.client.info("server")["redis_version"]
        started = time.monotonic()
        for phase in ("startup", "throughput", "idle", "latency"):
            if phase in args.phases:
                getattr(bench, "idle_cpu" if phase == "idle" else phase)()
        bench.results["machine_after"] = machine()
        bench.results["duration_s"] = time.monotonic() - started
        bench.save()
    write_report(json.loads((args.out / "results.json").read_text()), args.out)
    print(f"results in {args.out}")
    return 0
