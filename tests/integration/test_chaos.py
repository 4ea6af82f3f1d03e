"""Job accounting under chaos: random SIGKILLs of workers and job children, reloads with changing counts,
WINCH then HUP, a Redis restart; then QUIT and a fresh --burst pool drains the rest. Half the jobs are
there at the start (workers take from a backlog), the rest arrive during the chaos (idle workers wake
from their blocking wait). Both runs use two multi-queue lists beside a single-queue one, sharing the
queues, so the pool's claim and rq's BLMOVE meet on the same intermediate lists.

Every job must end exactly one of finished / failed-with-a-reason; none may vanish, stay STARTED
or run twice; no process may be left, no zombie may linger, the master's memory must stay flat.
The short version runs in CI; ``pytest -m soak -s`` runs the long one and prints a summary line.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import redis
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry, StartedJobRegistry

from ..harness import Pool, RedisServer, done_records, signal, wait_for

QUEUES = ("foo", "bar", "baz")
ARGS = ("--backoff-max", "3", "--min-uptime", "2", "--kill-timeout", "5")


def config(rng: random.Random, multi_queue: bool, prefork: bool = False) -> str:
    """Two multi-queue lists (the worker claims, worker/dequeue.py) and a single-queue one (rq's BLMOVE);
    or single-queue lists only. ``prefork``: every list keeps a job child waiting (``prefork_job_child``),
    which the chaos kills too."""
    counts = [str(rng.randint(1, 3)) for _ in range(3)]
    if prefork:
        counts = [f"{{count: {count}, prefork_job_child: true}}" for count in counts]
    if multi_queue:
        return f'"foo,bar,baz": {counts[0]}\n"bar,baz": {counts[1]}\nfoo: {counts[2]}\n'
    return f"foo: {counts[0]}\nbar: {counts[1]}\nbaz: {counts[2]}\n"


@dataclass
class Observations:
    actions: Counter = field(default_factory=Counter)
    zombie_sightings: dict[int, int] = field(default_factory=dict)  # pid -> consecutive samples seen as a zombie
    lingering_zombies: set[int] = field(default_factory=set)
    master_rss: list[int] = field(default_factory=list)

    def sample(self, pool: Pool) -> None:
        """Record zombies under the master (seen in 3 samples in a row: not reaped) and the master's RSS."""
        try:
            master = psutil.Process(pool.pid)
            self.master_rss.append(master.memory_info().rss)
            tree = master.children(recursive=True)
        except psutil.Error:
            return
        zombies = set()
        for proc in tree:
            try:
                if proc.status() == psutil.STATUS_ZOMBIE:
                    zombies.add(proc.pid)
            except psutil.Error:
                continue
        self.zombie_sightings = {pid: self.zombie_sightings.get(pid, 0) + 1 for pid in zombies}
        self.lingering_zombies |= {pid for pid, seen in self.zombie_sightings.items() if seen >= 3}


def worker_parents(pool: Pool) -> list[psutil.Process]:
    return pool.worker_processes()


def job_children(pool: Pool) -> list[psutil.Process]:
    children = []
    for worker in pool.worker_processes():
        try:
            children += worker.children()
        except psutil.Error:
            continue
    return children


def kill_one(processes: list[psutil.Process], rng: random.Random) -> bool:
    if not processes:
        return False
    try:
        rng.choice(processes).kill()
    except psutil.Error:
        return False
    return True


def enqueue_jobs(client: redis.Redis, count: int, rng: random.Random, first: int = 0) -> list[str]:
    ids = []
    queues = {name: Queue(name, connection=client) for name in QUEUES}
    with client.pipeline() as pipe:
        for n in range(first, first + count):
            name = rng.choice(QUEUES)
            if n % 5 == 0:
                job = queues[name].enqueue_call(
                    "testapp.jobs.sleep_then_record", args=(f"job-{n}", 0.2), pipeline=pipe, result_ttl=3600
                )
            else:
                job = queues[name].enqueue_call(
                    "testapp.jobs.record", args=(f"job-{n}",), pipeline=pipe, result_ttl=3600
                )
            ids.append(job.id)
        pipe.execute()
    return ids


def run_chaos(
    tmp_path: Path,
    redis_binary: str,
    jobs: int,
    seconds: float,
    seed: int,
    multi_queue: bool = False,
    prefork: bool = False,
) -> dict[str, int]:
    rng = random.Random(seed)
    server = RedisServer(redis_binary, tmp_path, ("--appendonly", "yes", "--appendfsync", "always"))
    server.start()
    pool = Pool(server, tmp_path, config(rng, multi_queue, prefork), ARGS)
    drain = Pool(server, tmp_path, "foo: 2\nbar: 2\nbaz: 2\n", ("--burst",))
    seen = Observations()
    try:
        client = server.client()
        ids = enqueue_jobs(client, jobs // 2, rng)
        per_round = max(1, (jobs - len(ids)) // int(seconds * 2))  # a round lasts 0.5 s on average
        pool.start()
        wait_for(lambda: pool.worker_processes(), 30, "the first workers")
        redis_restarted = False
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            seen.sample(pool)
            roll = rng.random()
            if roll < 0.35 and kill_one(worker_parents(pool), rng):
                seen.actions["kill-worker"] += 1
            elif roll < 0.65 and kill_one(job_children(pool), rng):
                seen.actions["kill-job"] += 1
            elif roll < 0.8:
                pool.write_config(config(rng, multi_queue, prefork))
                pool.signal(signal.SIGHUP)
                seen.actions["hup"] += 1
            elif roll < 0.9:
                pool.signal(signal.SIGWINCH)
                wait_for(lambda: not pool.worker_processes(), 30, "WINCH to stop the workers", interval=0.2)
                pool.signal(signal.SIGHUP)
                seen.actions["winch-hup"] += 1
            elif not redis_restarted and time.monotonic() - started > seconds / 3:
                server.stop()
                back_at = time.monotonic() + 3
                wait_for(lambda at=back_at: time.monotonic() > at, 10, "a 3 s outage", interval=0.2)
                seen.sample(pool)
                server.start()
                client = server.client()
                redis_restarted = True
                seen.actions["redis-restart"] += 1
            if len(ids) < jobs:
                ids += enqueue_jobs(client, min(per_round, jobs - len(ids)), rng, len(ids))
            time.sleep(rng.uniform(0.2, 0.8))  # the pace of the chaos, not a synchronisation
        assert redis_restarted or seconds < 10
        ids += enqueue_jobs(client, jobs - len(ids), rng, len(ids))
        assert pool.process.poll() is None, pool.log()[-3000:]
        pool.signal(signal.SIGQUIT)
        status = pool.wait_exit(60)
        assert status == 0, pool.log()[-3000:]
        wait_for(lambda: not pool.processes(), 20, "no process of the chaotic pool left")
        wait_for(lambda: janitors_done(client), 60, "every dead worker accounted for")
        drain.start()
        drain_while_progressing(drain, client)
        wait_for(lambda: not drain.processes(), 20, "no process of the draining pool left")
        return account(client, ids, seen)
    finally:
        pool.cleanup()
        drain.cleanup()
        server.stop()


def drain_while_progressing(drain: Pool, client: redis.Redis, stall: float = 60) -> None:
    """Wait for the --burst pool to exit 0 for as long as jobs keep completing (a loaded machine is slow)."""
    completed, last_progress = -1, time.monotonic()
    while drain.process.poll() is None:
        now_completed = client.llen("test:done") + sum(FailedJobRegistry(q, connection=client).count for q in QUEUES)
        if now_completed != completed:
            completed, last_progress = now_completed, time.monotonic()
        assert time.monotonic() - last_progress < stall, f"no job completed in {stall}s: {drain.log()[-3000:]}"
        time.sleep(0.5)  # polling interval
    assert drain.process.returncode == 0, drain.log()[-3000:]


def janitors_done(client: redis.Redis) -> bool:
    """Every STARTED registry is empty once the janitors of dead workers have run."""
    return all(StartedJobRegistry(name, connection=client).count == 0 for name in QUEUES)


def account(client: redis.Redis, ids: list[str], seen: Observations) -> dict[str, int]:
    statuses: Counter = Counter()
    problems = []
    runs = Counter(record["job"] for record in done_records(client))
    for job in Job.fetch_many(ids, connection=client):
        if job is None:
            problems.append("a job vanished from Redis")
            continue
        status = job.get_status()
        statuses[getattr(status, "value", status)] += 1
        if status == "finished" and runs[job.id] != 1:
            problems.append(f"{job.id} finished but recorded {runs[job.id]} runs")
        elif status == "failed":
            result = job.latest_result()
            if not (result and result.exc_string):
                problems.append(f"{job.id} failed without a reason")
            if runs[job.id] > 1:
                problems.append(f"{job.id} ran {runs[job.id]} times")
        elif status not in ("finished", "failed"):
            where = [
                key
                for key in (f"rq:queue:{job.origin}", f"rq:queue:{job.origin}:intermediate")
                if client.lpos(key, job.id) is not None
            ]
            problems.append(f"{job.id} ended {status} (origin {job.origin}, in {where or 'no list'})")
    assert not problems, f"{len(problems)} problems: {problems[:10]}"
    for name in QUEUES:
        assert Queue(name, connection=client).count == 0, f"{name} still holds jobs"
    assert not seen.lingering_zombies, f"zombies not reaped: {seen.lingering_zombies}"
    rss = seen.master_rss
    third = max(1, len(rss) // 3)
    assert max(rss[-third:]) <= max(rss[:third]) + 16 * 2**20, f"master RSS grew: {rss[:3]} ... {rss[-3:]}"
    summary = {"jobs": len(ids), **statuses, **seen.actions, "master_rss_mb": rss[-1] // 2**20}
    return summary


@pytest.mark.parametrize("prefork", [pytest.param(False, id="fork-per-job"), pytest.param(True, id="prefork")])
def test_chaos_every_job_is_accounted_for(redis_server, tmp_path, prefork):
    """Two multi-queue lists (the claim and its doorbell wait) and a single-queue one."""
    seed = random.randrange(2**32)
    try:
        summary = run_chaos(
            tmp_path, redis_server.binary, jobs=800, seconds=30, seed=seed, multi_queue=True, prefork=prefork
        )
    except AssertionError as exc:
        raise AssertionError(f"chaos seed {seed}: {exc}") from None
    assert summary["kill-worker"] + summary["kill-job"] >= 5, summary
    print(f"chaos summary (seed {seed}):", summary)


@pytest.mark.soak
@pytest.mark.parametrize("run", range(5))
def test_chaos_soak(redis_server, tmp_path, run):
    seed = random.randrange(2**32)
    summary = run_chaos(tmp_path, redis_server.binary, jobs=4000, seconds=180, seed=seed, multi_queue=True)
    print(f"chaos soak summary (seed {seed}): " + ", ".join(f"{k}={v}" for k, v in sorted(summary.items())))
