"""A multi-queue worker SIGKILLed anywhere on its way from the dequeue to the job child loses no job.

The test app kills the first worker to reach a point (``TEST_DEQUEUE_KILL``, testapp/faults.py),
right there; the pool replaces it and its janitor puts the job back, so every job still finishes
exactly once, also where Redis refuses the doorbell's CLIENT TRACKING (an ACL user without it) and
the worker waits in BLPOP. The chaos test covers the same with random kills under load.
"""

from __future__ import annotations

from collections import Counter

import psutil
import pytest
from rq import Queue
from rq.job import Job

from ..harness import done_records, signal, url_refusing_client_tracking, wait_for
from .lifecycle import assert_nothing_left

ARGS = ("--backoff-max", "1", "--min-uptime", "1")
POINTS = ("claimed", "claimed-after-wait", "dequeued", "registered", "job-child", "orphaned-job-child")


REFUSED = "Redis refused CLIENT TRACKING"
# Where Redis refuses CLIENT TRACKING the worker waits in BLPOP and pushes the job into the intermediate
# list: these points come after that push (the round trip before it is the documented window).
CASES = [(point, False) for point in POINTS] + [("claimed-after-wait", True), ("dequeued", True)]


def blocked_in_blpop(client) -> bool:
    return any(entry.get("cmd") == "blpop" for entry in client.client_list())


@pytest.mark.parametrize(
    ("point", "refused"), CASES, ids=[point + ("-no-tracking" if refused else "") for point, refused in CASES]
)
def test_multi_queue_worker_killed_on_its_way_to_the_job_loses_nothing(
    point, refused, pool_factory, redis_client, redis_server, tmp_path
):
    marker = tmp_path / point
    env = {"TEST_DEQUEUE_KILL": f"{point}:{tmp_path}"}
    if refused:
        env["TEST_REDIS_URL"] = url_refusing_client_tracking(redis_server)
    pool = pool_factory('"high,low": 1\n', ARGS, env=env)
    queues = {name: Queue(name, connection=redis_client) for name in ("high", "low")}
    jobs: list[Job] = []

    def enqueue(name: str, count: int) -> None:
        for n in range(count):
            jobs.append(queues[name].enqueue("testapp.jobs.record", f"{name}-{len(jobs)}-{n}", result_ttl=600))

    if point == "claimed-after-wait" or refused:
        pool.start()
        pool.wait_workers(1)  # idle: the job must arrive while the worker blocks
        if refused:
            wait_for(lambda: blocked_in_blpop(redis_client), 20, "the worker to wait in BLPOP")
        enqueue("low", 1)
    else:
        enqueue("low", 2)
        enqueue("high", 2)
        pool.start()
    wait_for(marker.exists, 30, f"a worker to reach {point!r}")
    killed_pid, killed_job = wait_for(lambda: marker.read_text().split() or None, 5, "the marker's content")
    wait_for(lambda: not psutil.pid_exists(int(killed_pid)), 10, "the killed worker to be gone")
    if point != "claimed-after-wait":
        enqueue("low", 1)  # and jobs keep flowing to the replacement

    def all_finished() -> bool:
        return all(job.get_status(refresh=True) == "finished" for job in jobs)

    try:
        wait_for(all_finished, 40, "every job to finish")
    except AssertionError:
        states = {job.id: job.get_status(refresh=True) for job in jobs}
        raise AssertionError(f"killed at {point} with {killed_job}: {states}; log:\n{pool.log()[-3000:]}") from None
    runs = Counter(record["job"] for record in done_records(redis_client))
    assert all(runs[job.id] == 1 for job in jobs), runs
    assert killed_job in runs
    assert (REFUSED in pool.log()) is refused
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit(30) == 0
    assert_nothing_left(pool, redis_client)


def test_a_multi_queue_worker_refused_client_tracking_waits_in_blpop_and_runs_every_job(
    pool_factory, redis_client, redis_server
):
    """A user Redis refuses CLIENT TRACKING (an ACL): one warning, then BLPOP; jobs that come while it waits run."""
    env = {"TEST_REDIS_URL": url_refusing_client_tracking(redis_server)}
    pool = pool_factory('"high,low": 1\n', ARGS, env=env).start()
    pool.wait_workers(1)
    queues = {name: Queue(name, connection=redis_client) for name in ("high", "low")}
    jobs = []
    for n, name in enumerate(["low", "high", "low", "high"]):
        wait_for(lambda: blocked_in_blpop(redis_client), 20, "the worker to wait in BLPOP")
        jobs.append(queues[name].enqueue("testapp.jobs.record", f"{name}-{n}", result_ttl=600))
        wait_for(lambda: jobs[-1].get_status(refresh=True) == "finished", 20, f"job {n} to finish")
    runs = Counter(record["job"] for record in done_records(redis_client))
    assert all(runs[job.id] == 1 for job in jobs), runs
    assert not [entry for entry in redis_client.client_list() if "t" in entry.get("flags", "")]  # nothing tracks
    assert redis_client.llen("rq:queue:low:intermediate") == redis_client.llen("rq:queue:high:intermediate") == 0
    (warning,) = [line for line in pool.log().splitlines() if REFUSED in line]
    assert "WARNING" in warning and "a worker killed then loses it" in warning
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit(30) == 0
    assert_nothing_left(pool, redis_client)


@pytest.mark.parametrize(
    ("lists", "point"),
    [('"high,low": 1', "fetch"), ('"high,low": 1', "register"), ("high: 1\nlow: 1", "register")],
    ids=["multi-fetch", "multi-register", "single-register"],
)
def test_a_redis_error_between_dequeue_and_registration_loses_nothing(
    lists, point, pool_factory, redis_client, tmp_path
):
    """A connection error after Redis handed a job over: rq dequeues again (fetch) or its loop quits (register).

    The claim stays the worker's and runs at its next dequeue; a worker whose loop quit holding a job
    exits 5, so the janitor puts the job back; no job waits for rq's maintenance.
    """
    marker = tmp_path / point
    pool = pool_factory(lists + "\n", ARGS, env={"TEST_DEQUEUE_FAIL": f"{point}:{tmp_path}"}).start()
    pool.wait_workers(lists.count(":"))
    queues = [Queue(name, connection=redis_client) for name in ("high", "low")]
    jobs = [q.enqueue("testapp.jobs.record", f"{q.name}-{n}", result_ttl=600) for n in range(3) for q in queues]
    wait_for(marker.exists, 30, f"a worker to reach {point!r}")
    failed_job = wait_for(lambda: marker.read_text().split()[1:] or None, 5, "the marker's content")[0]
    try:
        wait_for(lambda: all(job.get_status(refresh=True) == "finished" for job in jobs), 40, "every job to finish")
    except AssertionError:
        states = {job.id: job.get_status(refresh=True) for job in jobs}
        raise AssertionError(f"{point} failed for {failed_job}: {states}; log:\n{pool.log()[-3000:]}") from None
    runs = Counter(record["job"] for record in done_records(redis_client))
    assert all(runs[job.id] == 1 for job in jobs), runs
    if point == "register":
        assert f"before running job {failed_job}; the janitor puts it back" in pool.log()
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit(30) == 0
    assert_nothing_left(pool, redis_client)


def test_a_paused_multi_queue_worker_leaves_a_new_job_in_its_queue(pool_factory, redis_client):
    """USR2 while the worker waits: a job that then arrives stays in its queue, none in an intermediate list."""
    pool = pool_factory('"high,low": 1\n', ARGS).start()
    pool.wait_workers(1)
    pool.signal(signal.SIGUSR2)
    wait_for(lambda: [w.get("state") for w in pool.registered_workers().values()] == ["suspended"], 20, "a pause")
    job = Queue("low", connection=redis_client).enqueue("testapp.jobs.record", "while-paused")
    wait_for(lambda: redis_client.lrange("rq:queue:low", 0, -1) == [job.id.encode()], 5, "the job in its queue")
    assert redis_client.llen("rq:queue:low:intermediate") == 0
    pool.signal(signal.SIGCONT)
    wait_for(lambda: job.get_status(refresh=True) == "finished", 20, "the job to run after CONT")
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit(30) == 0
    assert_nothing_left(pool, redis_client)


def test_the_configured_worker_class_runs_claimed_jobs(pool_factory, redis_client):
    """A multi-queue list of rq's SimpleWorker claims too, and its jobs run in the worker itself."""
    pool = pool_factory('"high,low":\n  count: 1\n  worker_class: rq.worker.SimpleWorker\n', ARGS).start()
    pool.wait_workers(1)
    (worker,) = pool.worker_processes()
    jobs = [Queue(name, connection=redis_client).enqueue("testapp.jobs.record", name) for name in ("low", "high")]
    wait_for(lambda: all(job.get_status(refresh=True) == "finished" for job in jobs), 20, "the jobs to finish")
    assert {record["pid"] for record in done_records(redis_client)} == {worker.pid}
    assert redis_client.llen("rq:queue:low:intermediate") == redis_client.llen("rq:queue:high:intermediate") == 0
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit(30) == 0
    assert_nothing_left(pool, redis_client)
