"""Multi-queue dequeue: rq's BLPOP against the pool's claim (django_rq_pool/worker/dequeue.py).

``python -m bench.dequeue [--rounds N]`` runs one worker on ``high,low`` against a private
redis-server, once as rq dequeues and once as the pool does, both with the pool's worker mixin, and
prints per variant:

* pick-up latency: the producer's push to the job's registration in Redis, for a job that arrives
  while the worker waits (read from ``MONITOR``'s server timestamps);
* the loss window: the push to the first command after which a SIGKILLed worker loses nothing (rq:
  the registration; the pool: the push into the intermediate list, or 0 for a claim from a backlog);
* the backlog dequeue cost: microseconds per job (the best of 5 alternating runs, as the machine may
  be shared) and Redis commands per job (as INFO commandstats counts them: a script's own commands
  too) with the jobs waiting in the second queue (the claim looks at the first one too);
* Redis commands per idle worker per minute, and how many of them were scripts (EVALSHA).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
IDLE_SECONDS = 30


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


def start_worker(url: str, claims: bool, name: str) -> int:
    """A forked worker on high,low that heartbeats as a pool worker with the default --stuck-timeout."""
    pid = os.fork()
    if pid:
        return pid
    try:
        from rq import Queue

        from django_rq_pool.common.heartbeat_rule import worker_heartbeat_kwargs

        connection = redis.Redis.from_url(url)
        queues = [Queue(q, connection=connection) for q in ("high", "low")]
        worker = worker_class(claims)(queues, connection=connection, name=name, **worker_heartbeat_kwargs(120))
        worker.work(logging_level="WARNING")
    finally:
        os._exit(0)


def stop_worker(pid: int) -> None:
    import signal

    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def waiting(client: redis.Redis) -> bool:
    """The (only) worker is blocked in its dequeue."""
    return any(c.get("cmd") == "blpop" for c in client.client_list())


def wait(predicate: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.002)


class Monitor(threading.Thread):
    """Server timestamps of the commands that mention a job: push, claim, registration."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(url, socket_timeout=None)
        self.lines: list[tuple[float, str, str]] = []  # time, command, client type ("lua": a script's own)
        self.stop = False

    def run(self) -> None:
        with self.client.monitor() as monitor:
            for event in monitor.listen():
                if self.stop:
                    return
                self.lines.append((float(event["time"]), event["command"], event.get("client_type", "")))

    def first(self, pattern: str, job_id: str) -> float | None:
        regex = re.compile(pattern)
        for at, command, _ in self.lines:
            if job_id in command and regex.search(command):
                return at
        return None


def measure_waiting(url: str, claims: bool, rounds: int) -> dict[str, float]:
    from rq import Queue

    client = redis.Redis.from_url(url)
    client.flushdb()
    name = f"bench-{'pool' if claims else 'rq'}"
    pid = start_worker(url, claims, name)
    monitor = Monitor(url)
    monitor.start()
    low = Queue("low", connection=client)
    ids = []
    try:
        for _ in range(rounds):
            wait(lambda: waiting(client), "the worker to wait")
            job = low.enqueue("os.getpid", result_ttl=60)
            ids.append(job.id)
            wait(lambda job=job: job.get_status(refresh=True) == "finished", "the job")
    finally:
        stop_worker(pid)
        monitor.stop = True
        client.ping()  # one more line so that the monitor thread sees the flag
    pickup, window = [], []
    for job_id in ids:
        pushed = monitor.first("^RPUSH rq:queue:low ", job_id)
        registered = monitor.first("^ZADD rq:wip:low ", job_id)
        claimed = monitor.first("^RPUSH rq:queue:low:intermediate ", job_id) if claims else registered
        if pushed is not None and registered is not None and claimed is not None:
            pickup.append((registered - pushed) * 1e6)
            window.append((claimed - pushed) * 1e6)
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


def total_commands(client: redis.Redis, name: str | None = None) -> int:
    stats = client.info("commandstats")
    return sum(int(entry["calls"]) for key, entry in stats.items() if name is None or key == f"cmdstat_{name}")


def measure_backlog(url: str, claims: bool, jobs: int) -> dict[str, float]:
    from rq import Queue

    from django_rq_pool.worker.dequeue import ClaimingQueue

    client = redis.Redis.from_url(url)
    client.flushdb()
    queues = [Queue(q, connection=client) for q in ("high", "low")]
    with client.pipeline() as pipe:
        for _ in range(jobs):
            queues[1].enqueue("os.getpid", pipeline=pipe)
        pipe.execute()
    dequeue_any = ClaimingQueue.dequeue_any if claims else Queue.dequeue_any
    before = total_commands(client)
    started = time.perf_counter()
    for _ in range(jobs):
        dequeue_any(queues, 5, connection=client)
    elapsed = time.perf_counter() - started
    commands = total_commands(client) - before - 1  # less the INFO call itself
    return {"us_per_job": elapsed / jobs * 1e6, "commands_per_job": commands / jobs}


def measure_idle(url: str, claims: bool) -> tuple[float, float]:
    """Redis commands per minute from one idle worker (heartbeats, sliced blocking waits); of them, scripts."""
    client = redis.Redis.from_url(url)
    client.flushdb()
    name = f"idle-{'pool' if claims else 'rq'}"
    pid = start_worker(url, claims, name)
    try:
        wait(lambda: waiting(client), "the worker to wait")
        before, scripts_before = total_commands(client), total_commands(client, "evalsha")
        time.sleep(IDLE_SECONDS)  # the measurement interval itself
        after, scripts_after = total_commands(client), total_commands(client, "evalsha")
    finally:
        stop_worker(pid)
    per_minute = 60 / IDLE_SECONDS
    return (after - before - 2) * per_minute, (scripts_after - scripts_before) * per_minute  # less our INFOs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300, help="jobs that arrive while the worker waits")
    parser.add_argument("--backlog", type=int, default=2000, help="jobs in the backlog test")
    args = parser.parse_args()
    setup_django()
    from tests.harness import RedisServer, redis_server_binary

    binary = redis_server_binary()
    if binary is None:
        print("bench.dequeue: no redis-server found", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(binary, Path(tmp))
        server.start()
        url = f"redis://127.0.0.1:{server.port}/0"
        try:
            backlog: dict[bool, list[dict[str, float]]] = {False: [], True: []}
            for _ in range(5):
                for claims in (False, True):
                    backlog[claims].append(measure_backlog(url, claims, args.backlog))
            for claims in (False, True):
                label = "pool claim" if claims else "rq BLPOP"
                waited = measure_waiting(url, claims, args.rounds)
                print(f"{label}: job arriving while the worker waits ({waited.pop('samples')} jobs), microseconds:")
                print("    " + ", ".join(f"{key.strip()} {value:.0f}" for key, value in waited.items()))
                best = min(run["us_per_job"] for run in backlog[claims])
                commands = backlog[claims][0]["commands_per_job"]
                print(f"    backlog: {best:.0f} us per job (best of 5), {commands:.1f} Redis commands per job")
                total, scripts = measure_idle(url, claims)
                print(f"    idle worker: {total:.0f} Redis commands per minute, {scripts:.0f} of them scripts")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
