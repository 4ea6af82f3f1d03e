"""Multi-queue dequeue: rq's BLPOP against the pool's claim (django_rq_pool/worker/dequeue.py).

``python -m bench.dequeue [--rounds N]`` runs one worker on ``high,low`` against a private
redis-server in three variants, each with the pool's worker mixin: rq's own dequeue (BLPOP), the
pool's claim waiting on its doorbell, and the pool's claim where Redis refuses CLIENT TRACKING (the
worker's ACL user may not run it, so it falls back to BLPOP and a push). It prints per variant:

* pick-up latency: the producer's push to the job's registration in Redis, for a job that arrives
  while the worker waits (read from ``MONITOR``'s server timestamps);
* the loss window: the push to the first command after which a SIGKILLed worker loses nothing (rq:
  the registration; the fallback: the push into the intermediate list; the doorbell: none, the
  claim script pops and pushes in one step);
* the backlog dequeue cost: microseconds per job (the best of 5 alternating runs, as the machine may
  be shared) and Redis commands per job (as INFO commandstats counts them: a script's own commands
  too) with the jobs waiting in the second queue (the claim looks at the first one too);
* Redis commands per idle worker per minute, how many of them were scripts (EVALSHA), and the
  connections it opened meanwhile.

``--phases`` picks some of ``backlog,waiting,idle``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.harness import wait_for

from .cleanup import cleans_up
from .measure import Monitor, stat, total_commands
from .redis_server import own_server

ROOT = Path(__file__).resolve().parent.parent
IDLE_SECONDS = 30
QUIET_SECONDS = 0.03


@dataclass(frozen=True)
class Variant:
    label: str
    claims: bool  # the pool's claiming dequeue, or rq's own
    refused: bool = False  # the worker's user may not run CLIENT TRACKING: the BLPOP fallback


VARIANTS = (Variant("rq BLPOP", False), Variant("pool doorbell", True), Variant("pool BLPOP fallback", True, True))


def setup_django() -> None:
    sys.path.insert(0, str(ROOT / "tests" / "testproject"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
    import django

    django.setup()


def worker_class(claims: bool) -> type:
    from rq.worker import Worker

    from django_rq_pool.worker.dequeue import ClaimingWorkerMixin
    from django_rq_pool.worker.mixin import PoolWorkerMixin

    bases = (PoolWorkerMixin, ClaimingWorkerMixin, Worker) if claims else (PoolWorkerMixin, Worker)
    return type("BenchWorker", bases, {})


def start_worker(url: str, variant: Variant, name: str) -> int:
    """A forked worker on high,low that heartbeats as a pool worker with the default --stuck-timeout."""
    pid = os.fork()
    if pid:
        return pid
    try:
        from rq import Queue

        from django_rq_pool.common.heartbeat_rule import worker_heartbeat_kwargs

        connection = redis.Redis.from_url(url)
        queues = [Queue(q, connection=connection) for q in ("high", "low")]
        worker = worker_class(variant.claims)(queues, connection=connection, name=name, **worker_heartbeat_kwargs(120))
        worker.work(logging_level="WARNING")
    finally:
        os._exit(0)


def stop_worker(pid: int) -> None:
    import signal

    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def waiting(client: redis.Redis) -> bool:
    """The (only) worker waits: blocked in BLPOP or on its doorbell, and Redis heard nothing else for a while."""
    commands = [entry.get("cmd") for entry in client.client_list()]
    if "blpop" not in commands and "subscribe" not in commands:
        return False
    before = stat(client, "total_commands_processed")
    time.sleep(QUIET_SECONDS)
    return stat(client, "total_commands_processed") - before == 1  # only the first INFO itself


def measure_waiting(admin_url: str, url: str, variant: Variant, rounds: int) -> dict[str, float]:
    from rq import Queue

    client = redis.Redis.from_url(admin_url)
    client.flushdb()
    pid = start_worker(url, variant, "bench-" + variant.label.replace(" ", "-"))
    monitor = Monitor(admin_url)
    monitor.start()
    low = Queue("low", connection=client)
    ids = []
    try:
        for _ in range(rounds):
            wait_for(lambda: waiting(client), 30, "the worker to wait", 0.002)
            job = low.enqueue("os.getpid", result_ttl=60)
            ids.append(job.id)
            wait_for(lambda job=job: job.get_status(refresh=True) == "finished", 30, "the job", 0.002)
    finally:
        stop_worker(pid)
        monitor.stop = True
        client.ping()  # one more line so that the monitor thread sees the flag
    pickup, window = [], []
    for job_id in ids:
        pushed = monitor.first("^RPUSH rq:queue:low ", job_id)
        registered = monitor.first("^ZADD rq:wip:low ", job_id)
        landed = registered
        if variant.claims:  # the doorbell's claim pops and pushes in one script: no window
            landed = monitor.first("^RPUSH rq:queue:low:intermediate ", job_id) if variant.refused else pushed
        if pushed is not None and registered is not None and landed is not None:
            pickup.append((registered - pushed) * 1e6)
            window.append((landed - pushed) * 1e6)
    return {
        "pick-up median": statistics.median(pickup),
        "p99": quantile(pickup, 0.99),
        "loss window median": statistics.median(window),
        "p99 ": quantile(window, 0.99),
        "max": max(window),
        "samples": len(window),
    }


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure_backlog(admin_url: str, url: str, variant: Variant, jobs: int) -> dict[str, float]:
    from rq import Queue

    from django_rq_pool.worker.dequeue import ClaimingQueue, HeldClaim

    admin = redis.Redis.from_url(admin_url)
    admin.flushdb()
    client = redis.Redis.from_url(url)
    queues = [Queue(q, connection=client) for q in ("high", "low")]
    with client.pipeline() as pipe:
        for _ in range(jobs):
            queues[1].enqueue("os.getpid", pipeline=pipe)
        pipe.execute()
    dequeue_any = ClaimingQueue.dequeue_any if variant.claims else Queue.dequeue_any
    before = total_commands(admin)
    started = time.perf_counter()
    for _ in range(jobs):
        dequeue_any(queues, 5, connection=client)
        HeldClaim.release()  # as the worker does once it executes the job
    elapsed = time.perf_counter() - started
    commands = total_commands(admin) - before - 1  # less the INFO call itself
    return {"us_per_job": elapsed / jobs * 1e6, "commands_per_job": commands / jobs}


def measure_idle(admin_url: str, url: str, variant: Variant) -> tuple[float, float, float]:
    """Per minute from one idle worker (heartbeats, sliced waits): Redis commands, scripts, connections."""
    client = redis.Redis.from_url(admin_url)
    client.flushdb()
    pid = start_worker(url, variant, "idle-worker")
    try:
        wait_for(lambda: waiting(client), 30, "the worker to wait", 0.002)
        before = total_commands(client), total_commands(client, "evalsha"), stat(client, "total_connections_received")
        time.sleep(IDLE_SECONDS)  # the measurement interval itself
        after = total_commands(client), total_commands(client, "evalsha"), stat(client, "total_connections_received")
    finally:
        stop_worker(pid)
    per_minute = 60 / IDLE_SECONDS
    # less the three INFOs of ``before`` (their connection was open already)
    return (
        (after[0] - before[0] - 3) * per_minute,
        (after[1] - before[1]) * per_minute,
        (after[2] - before[2]) * per_minute,
    )


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


@cleans_up("python -m bench.dequeue")
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300, help="jobs that arrive while the worker waits")
    parser.add_argument("--backlog", type=int, default=2000, help="jobs in the backlog test")
    parser.add_argument("--phases", default="backlog,waiting,idle", help="which measurements to make")
    args = parser.parse_args()
    phases = set(args.phases.split(","))
    setup_django()
    from tests.harness import url_refusing_client_tracking

    with own_server("rqpool-dequeue-bench-") as server:
        print(f"load average at start: {load()} ({os.cpu_count()} cores)")
        admin_url = f"redis://127.0.0.1:{server.port}/0"
        refusing_url = url_refusing_client_tracking(server, db=0)
        urls = {variant: refusing_url if variant.refused else admin_url for variant in VARIANTS}
        backlog: dict[Variant, list[dict[str, float]]] = {variant: [] for variant in VARIANTS}
        for _ in range(5 if "backlog" in phases else 0):
            for variant in VARIANTS:
                backlog[variant].append(measure_backlog(admin_url, urls[variant], variant, args.backlog))
        for variant in VARIANTS:
            print(f"{variant.label}:")
            if "waiting" in phases:
                waited = measure_waiting(admin_url, urls[variant], variant, args.rounds)
                print(f"    job arriving while the worker waits ({waited.pop('samples')} jobs), µs:")
                print("    " + ", ".join(f"{key.strip()} {value:.0f}" for key, value in waited.items()))
            if "backlog" in phases:
                best = min(run["us_per_job"] for run in backlog[variant])
                commands = backlog[variant][0]["commands_per_job"]
                print(f"    backlog: {best:.0f} µs per job (best of 5), {commands:.1f} Redis commands per job")
            if "idle" in phases:
                total, scripts, opened = measure_idle(admin_url, urls[variant], variant)
                print(f"    idle worker, per minute: {total:.0f} Redis commands, {scripts:.0f} scripts,", end=" ")
                print(f"{opened:.0f} connections")
    print(f"load average at end: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
