"""Autoscaling through real pools: spikes, drains, scale from zero, busy workers, memory, Redis outages,
manual scales and several pools on different hostnames sharing one backlog."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from rq.job import Job

from ..harness import MANAGE, TEST_PROJECT, done_records, wait_for

SLEEP = "testapp.jobs.sleep_then_record"


def listening(pool, queue: str = "foo") -> int:
    """Workers of this pool registered in Redis on ``queue`` (rq registers a worker as it starts listening)."""
    return sum(queue in fields.get("queues", "").split(",") for fields in pool.registered_workers().values())


def busy(pool) -> int:
    return sum(fields.get("state") == "busy" for fields in pool.registered_workers().values())


def timed(predicate, timeout: float, message: str) -> float:
    """Seconds until predicate() holds (polling), or fail after timeout."""
    started = time.monotonic()
    wait_for(predicate, timeout, message, interval=0.01)
    return time.monotonic() - started


def decisions(pool) -> list[str]:
    return [line for line in pool.log().splitlines() if "django_rq_pool.control.autoscale:" in line]


def pool_record(client, pool) -> dict[str, Any] | None:
    """This pool's record in the registry (None until its control child wrote it)."""
    for member in client.smembers("rqpool:pools"):
        if member.decode().endswith(f":{pool.pid}"):
            value = client.get(f"rqpool:pool:{member.decode()}")
            return json.loads(value) if value else None
    return None


def list_entry(client, pool, key: str = "foo") -> dict[str, Any] | None:
    record = pool_record(client, pool)
    return next((item for item in record["lists"] if item["key"] == key), None) if record else None


def rqpoolctl(redis_server, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(MANAGE), "rqpoolctl", *args],
        cwd=TEST_PROJECT,
        capture_output=True,
        text=True,
        env={**os.environ, "TEST_REDIS_URL": redis_server.url},
        timeout=60,
    )


class Sampler:
    """Samples a value in a thread every 20 ms while the block runs; .values holds them."""

    def __init__(self, sample):
        self.sample = sample
        self.values: list[Any] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.values.append(self.sample())
            time.sleep(0.02)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_a_spike_scales_up_to_max_and_drains_back_to_min_after_the_delay(pool_factory, queue, redis_client):
    pool = pool_factory("foo: {min: 1, max: 6, scale_down_delay: 2}\n").start()
    pool.wait_workers(1)
    started = time.monotonic()
    for n in range(60):
        queue("foo").enqueue(SLEEP, f"spike-{n}", 0.3)
    first = timed(lambda: listening(pool) >= 2, 10, "a second worker")
    full = timed(lambda: listening(pool) == 6, 10, "six workers")
    assert first < 1.0, f"first extra worker after {first:.2f}s"
    assert time.monotonic() - started < 3.0, f"max reached after {time.monotonic() - started:.2f}s"
    wait_for(lambda: len(done_records(redis_client)) == 60, 30, "every job done")
    drained = time.monotonic()
    wait_for(lambda: listening(pool) == 1, 15, "back to min")
    assert time.monotonic() - drained >= 1.5, "scaled down before scale_down_delay"
    lines = decisions(pool)
    up = next(line for line in lines if "scale up: 1 -> " in line)
    assert "[foo]" in up and "backlog " in up and "busy " in up and "need " in up and "bounds 1..6" in up
    assert any("scale down: " in line and "-> 1 (" in line for line in lines), lines
    assert full < 10


def test_scale_from_zero_runs_the_first_job_within_a_second(pool_factory, queue, redis_client):
    pool = pool_factory("foo: {min: 0, max: 2, scale_down_delay: 1}\n").start()
    wait_for(lambda: pool_record(redis_client, pool), 20, "the pool's record in the registry")
    assert listening(pool) == 0 and not pool.worker_processes()
    job = queue("foo").enqueue("testapp.jobs.record", "first")
    wait_for(lambda: len(done_records(redis_client)) == 1, 10, "the first job done")
    job = Job.fetch(job.id, connection=redis_client)
    waited = (job.started_at - job.enqueued_at).total_seconds()
    assert waited < 1.0, f"the job started {waited:.2f}s after its enqueue"
    wait_for(lambda: not pool.worker_processes(), 15, "back to zero workers")
    assert any("scale up: 0 -> 1 (backlog 1" in line for line in decisions(pool)), decisions(pool)


def test_a_busy_worker_survives_a_scale_down(pool_factory, queue, redis_client):
    pool = pool_factory("foo: {min: 1, max: 3, scale_down_delay: 1}\n").start()
    pool.wait_workers(1)
    long_job = queue("foo").enqueue(SLEEP, "long", 8)
    for n in range(4):
        queue("foo").enqueue(SLEEP, f"short-{n}", 0.2)
    wait_for(lambda: listening(pool) == 3, 10, "three workers")
    wait_for(lambda: len(done_records(redis_client)) == 4, 20, "the short jobs done")
    busy_pids = wait_for(
        lambda: (
            len(pids := [f["pid"] for f in pool.registered_workers().values() if f.get("state") == "busy"]) == 1
            and pids
        ),
        10,
        "only the long job's worker busy",
    )
    wait_for(lambda: listening(pool) == 1, 15, "the idle workers retired")
    assert long_job.get_status(refresh=True).value == "started"
    (remaining,) = pool.registered_workers().values()
    assert remaining["pid"] == busy_pids[0] and remaining["state"] == "busy"
    wait_for(lambda: long_job.get_status(refresh=True).value == "finished", 20, "the long job finished")
    assert "-> 1 (backlog 0, busy 1, need 1" in "\n".join(decisions(pool))


def test_the_memory_budget_holds_back_a_scale_up(pool_factory, queue, redis_client):
    pool = pool_factory("foo: {min: 1, max: 4}\n", args=("--max-memory", "1MiB")).start()
    pool.wait_workers(1)
    with Sampler(lambda: len(pool.worker_processes())) as counts:
        for n in range(12):
            queue("foo").enqueue(SLEEP, f"held-{n}", 0.2)
        wait_for(lambda: len(done_records(redis_client)) == 12, 30, "every job done by the one worker")
    assert counts.values and max(counts.values) == 1, counts.values
    held = [line for line in decisions(pool) if "scale-up held by memory: 1 -> 1" in line]
    assert held and "of 1 MiB" in held[0] and "backlog " in held[0], decisions(pool)


def test_a_redis_outage_freezes_the_counts(pool_factory, queue, redis_client, redis_server):
    pool = pool_factory("foo: {min: 1, max: 4, scale_down_delay: 3}\n").start()
    pool.wait_workers(1)
    for n in range(12):
        queue("foo").enqueue(SLEEP, f"before-{n}", 0.2)
    wait_for(lambda: listening(pool) == 4, 10, "four workers")
    wait_for(lambda: len(done_records(redis_client)) == 12, 20, "every job done")
    redis_server.stop()
    down = time.monotonic()
    pool.wait_log("control: Redis unreachable", 10)
    wait_for(lambda: time.monotonic() - down > 6, 10, "twice the scale-down delay")
    assert not [line for line in pool.log().splitlines() if "autoscale: [foo] 4 -> " in line]
    redis_server.start()
    wait_for(lambda: "autoscale: [foo] 4 -> 1 workers" in pool.log(), 30, "the scale-down once Redis is back")
    back = pool.log().index("control: Redis reachable again")
    assert pool.log().index("autoscale: [foo] 4 -> 1 workers") > back


def test_a_manual_scale_pins_an_autoscaled_list_until_reset(pool_factory, queue, redis_client, redis_server):
    pool = pool_factory("foo: {min: 1, max: 4, scale_down_delay: 1}\n").start()
    pool.wait_workers(1)
    record = wait_for(lambda: pool_record(redis_client, pool), 20, "the pool's record")
    refused = rqpoolctl(redis_server, "scale", "foo=5", "--pool", record["id"])
    assert refused.returncode != 0 and "over the cap of 4 (its max)" in refused.stdout + refused.stderr
    pinned = rqpoolctl(redis_server, "scale", "foo=3", "--pool", record["id"])
    assert pinned.returncode == 0, pinned
    assert "autoscaling is suspended for this list until reset" in pinned.stdout
    wait_for(lambda: listening(pool) == 3, 10, "three workers")
    entry = wait_for(lambda: (e := list_entry(redis_client, pool)) and e["override"] == 3 and e, 10, "override 3")
    assert (entry["min"], entry["max"], entry["desired"]) == (1, 4, 3)
    status = rqpoolctl(redis_server, "status")
    assert "MIN..MAX" in status.stdout and "1..4" in status.stdout, status.stdout
    with Sampler(lambda: listening(pool)) as counts:
        wait_for(lambda: len(counts.values) > 100, 10, "2 s of samples")
    assert set(counts.values) == {3}, counts.values
    assert rqpoolctl(redis_server, "reset", "foo", "--pool", record["id"]).returncode == 0
    wait_for(lambda: listening(pool) == 1, 15, "autoscaled back to min after the delay")


def on_host(pool, hostname: str):
    """Run the pool's master in its own UTS namespace with its own hostname."""
    pool.prefix = ("unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', hostname)
    return pool


def test_two_pools_on_different_hosts_share_a_spike(pool_factory, queue, redis_client):
    if subprocess.run(["unshare", "--uts", "true"], capture_output=True).returncode != 0:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("unshare --uts is not permitted here, and CI needs it")
        pytest.skip("unshare --uts is not permitted here (needs root or user namespaces)")
    config = "foo: {min: 0, max: 8, scale_down_delay: 2}\n"
    pools = [on_host(pool_factory(config), host).start() for host in ("host-a", "host-b")]
    records = [wait_for(lambda p=p: pool_record(redis_client, p), 20, "both records") for p in pools]
    assert {r["host"] for r in records} == {"host-a", "host-b"}
    with Sampler(lambda: [len(p.worker_processes()) for p in pools]) as counts:
        for n in range(8):
            queue("foo").enqueue(SLEEP, f"shared-{n}", 3)
        wait_for(lambda: len(done_records(redis_client)) == 8, 30, "every job done")
    totals = [sum(sample) for sample in counts.values]
    assert max(totals) <= 8 + len(pools), f"{max(totals)} workers for 8 jobs: {counts.values[-20:]}"
    assert all(max(sample[i] for sample in counts.values) > 0 for i in range(2)), "one pool did all the work"
    shared = [line for p in pools for line in decisions(p) if "1 other pools" in line]
    assert shared, [decisions(p) for p in pools]


def test_a_reload_clamps_the_autoscaled_count_into_the_new_bounds(pool_factory, queue, redis_client):
    pool = pool_factory("foo: {min: 1, max: 4, scale_down_delay: 30}\n").start()
    pool.wait_workers(1)
    for n in range(8):
        queue("foo").enqueue(SLEEP, f"reload-{n}", 1)
    wait_for(lambda: listening(pool) == 4, 10, "four workers")
    pool.write_config("foo: {min: 1, max: 2, scale_down_delay: 30}\n")
    pool.signal(signal.SIGHUP)
    entry = wait_for(lambda: (e := list_entry(redis_client, pool)) and e["max"] == 2 and e, 10, "the new bounds")
    assert entry["desired"] == 2
    wait_for(lambda: len(pool.worker_processes()) == 2, 15, "two workers")
    wait_for(lambda: len(done_records(redis_client)) == 8, 30, "every job done")
    pool.write_config("foo: 3\n")
    pool.signal(signal.SIGHUP)
    entry = wait_for(lambda: (e := list_entry(redis_client, pool)) and e["min"] is None and e, 10, "a fixed list")
    assert (entry["desired"], entry["max"]) == (3, None)
    wait_for(lambda: listening(pool) == 3, 15, "three workers")
