"""Fewer Redis round trips between two jobs (worker/heartbeats.py), with the worker's hash as fresh as rq keeps it.

Real forked workers (rq's ``Worker`` and the pool's worker class) against the test redis-server;
commands are counted with INFO commandstats, never timed.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import datetime, timezone

import pytest
from rq import Queue
from rq.utils import utcparse

from django_rq_pool.common.heartbeat_rule import worker_heartbeat_kwargs

from ..harness import wait_for

STOP_CHECK_SECONDS = 5  # worker/paused_dequeue.py: an idle worker's dequeue slice, one heartbeat each


def start_worker(url: str, pool: bool, queues: tuple[str, ...], name: str, stuck_timeout: float, **work: object) -> int:
    """A forked worker, rq's own or the pool's class as ``entry.build_worker`` composes it."""
    pid = os.fork()
    if pid:
        return pid
    status = 1
    try:
        import django
        import redis
        from rq.worker import Worker

        django.setup()
        from django_rq_pool.compat import WORKER_SHIMS
        from django_rq_pool.worker.dequeue import ClaimingWorkerMixin
        from django_rq_pool.worker.mixin import PoolWorkerMixin
        from django_rq_pool.worker.prefork import PreforkMixin

        bases = (PreforkMixin, PoolWorkerMixin, ClaimingWorkerMixin, *WORKER_SHIMS, Worker) if pool else (Worker,)
        connection = redis.Redis.from_url(url)
        worker = type("TestWorker", bases, {})(
            [Queue(q, connection=connection) for q in queues],
            connection=connection,
            name=name,
            **worker_heartbeat_kwargs(stuck_timeout),
        )
        worker.work(logging_level="WARNING", **work)
        status = 0
    finally:
        os._exit(status)


def reap(pid: int, timeout: float = 60) -> None:
    wait_for(lambda: os.waitpid(pid, os.WNOHANG)[0] == pid, timeout, f"worker {pid} to exit")


def end(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def commands(client) -> dict[str, int]:
    return {key.removeprefix("cmdstat_"): int(entry["calls"]) for key, entry in client.info("commandstats").items()}


def commands_per_job(redis_server, client, pool: bool, queues: tuple[str, ...]) -> dict[str, float]:
    """Commands per job by name, and ``total``: a run of 40 jobs less a run of 10, so start and exit cancel out."""
    counts = []
    for jobs in (10, 40):
        client.flushdb()
        low = Queue("low", connection=client)
        for _ in range(jobs):
            low.enqueue("os.getpid")
        before = commands(client)
        pid = start_worker(redis_server.url, pool, queues, f"count-{pool}-{jobs}", 120, max_jobs=jobs)
        try:
            reap(pid)
        finally:
            end(pid)
        after = commands(client)
        counts.append({name: after[name] - before.get(name, 0) for name in after})
    few, many = counts
    per_job = {name: (many[name] - few.get(name, 0)) / 30 for name in many}
    per_job["total"] = sum(per_job.values())
    return per_job


@pytest.mark.parametrize("queues", [("low",), ("high", "low")], ids=["single-queue", "multi-queue"])
def test_the_pool_worker_sends_fewer_commands_per_job_than_rq(redis_server, redis_client, queues):
    rq = commands_per_job(redis_server, redis_client, False, queues)
    pool = commands_per_job(redis_server, redis_client, True, queues)
    # Of rq's four worker heartbeats between two jobs, two are skipped (after the job and before the
    # dequeue; those with the idle state and EXISTS stay), and with rq 2.12 the second
    # set_state(IDLE) too (with rq 2.6.1 one more HSET is left: 15 per job against its 17, measured).
    assert pool["expire"] <= rq["expire"] - 1.5, (pool, rq)
    assert pool["hset"] <= rq["hset"] - 1.5, (pool, rq)
    assert pool.get("hsetnx", 0) <= 1.5, pool  # the state's HSETNX rides on a heartbeat
    if len(queues) == 1:  # a multi-queue list claims with a script, whose inner commands count too
        assert pool["total"] <= rq["total"] - 3, (pool, rq)


def beat_age(client, key: str) -> float:
    beat = client.hget(key, "last_heartbeat")
    assert beat is not None, f"{key} has no last_heartbeat"
    return (datetime.now(timezone.utc) - utcparse(beat.decode()).replace(tzinfo=timezone.utc)).total_seconds()


def watch(client, key: str, seconds: float, state: str, max_age: float, min_ttl: int) -> None:
    """For ``seconds``: the key holds ``state``, a heartbeat at most ``max_age`` old and at least ``min_ttl``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert client.hget(key, "state") == state.encode()
        assert beat_age(client, key) <= max_age
        assert client.ttl(key) >= min_ttl
        time.sleep(0.2)


def test_the_worker_key_stays_fresh_through_a_long_idle_wait_and_a_long_job(redis_server, redis_client):
    name = "fresh"
    key = f"rq:worker:{name}"
    pid = start_worker(redis_server.url, True, ("low",), name, stuck_timeout=8)  # beats every 2 s while busy
    try:
        wait_for(lambda: redis_client.hget(key, "state") == b"idle", message="the worker to wait")
        # Idle: one heartbeat per dequeue slice, the expiry worker_ttl + 60 = 77 s.
        slice_ = STOP_CHECK_SECONDS
        watch(redis_client, key, 2 * slice_ + 2, "idle", max_age=slice_ + 2, min_ttl=77 - slice_ - 2)
        job = Queue("low", connection=redis_client).enqueue("time.sleep", 7)
        wait_for(lambda: redis_client.hget(key, "state") == b"busy", message="the job to start")
        # Busy: rq's heartbeat every job_monitoring_interval (2 s), expiry 2 + 60.
        watch(redis_client, key, 5, "busy", max_age=2 + 2, min_ttl=62 - 2 - 2)
        wait_for(lambda: job.get_status(refresh=True) == "finished", 20, "the job to finish")
        wait_for(lambda: redis_client.hget(key, "state") == b"idle", message="the worker idle again")
        assert beat_age(redis_client, key) <= 2
        assert redis_client.ttl(key) >= 77 - 2
    finally:
        end(pid)


def test_after_a_redis_restart_or_a_deleted_key_the_hash_holds_the_state_again(redis_server, redis_client):
    name = "restarted"
    key = f"rq:worker:{name}"
    pid = start_worker(redis_server.url, True, ("low",), name, stuck_timeout=120)
    try:
        wait_for(lambda: redis_client.hget(key, "state") == b"idle", message="the worker to wait")
        redis_client.delete(key)
        wait_for(lambda: redis_client.hget(key, "state") == b"idle", 3 * STOP_CHECK_SECONDS, "the state back")
        assert redis_client.ttl(key) > 0
        redis_server.stop()
        redis_server.start()  # no persistence: the worker's hash is gone
        client = redis_server.client()
        assert not client.exists(key)
        wait_for(lambda: client.hget(key, "state") == b"idle", 3 * STOP_CHECK_SECONDS, "the state after a restart")
        assert client.ttl(key) > 0
        job = Queue("low", connection=client).enqueue("os.getpid")
        wait_for(lambda: job.get_status(refresh=True) == "finished", message="a job after the restart")
        wait_for(lambda: client.hget(key, "state") == b"idle", message="idle after the job")
    finally:
        end(pid)


def test_a_healthy_pool_worker_is_never_judged_stuck_and_a_stopped_one_is(pool_factory, queue):
    pool = pool_factory("foo: 1\n", ("--stuck-timeout", "4")).start()
    pool.wait_workers(1)
    (worker,) = pool.worker_processes()
    foo = queue("foo")
    jobs = [foo.enqueue("os.getpid") for _ in range(30)]
    jobs.append(foo.enqueue("time.sleep", 6))  # busy longer than the stuck timeout
    wait_for(lambda: all(job.get_status(refresh=True) == "finished" for job in jobs), 60, "the jobs")
    idle_until = time.monotonic() + 6  # idle longer than the stuck timeout
    wait_for(lambda: time.monotonic() >= idle_until, 10, "an idle spell")
    assert "is stuck" not in pool.log()
    assert [p.pid for p in pool.worker_processes()] == [worker.pid]
    os.kill(worker.pid, signal.SIGSTOP)
    pool.wait_log(f"worker {worker.pid} [foo] is stuck: no heartbeat in Redis for", timeout=30)
