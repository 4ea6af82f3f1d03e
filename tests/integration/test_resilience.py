"""Resilience with real processes and a real redis-server: crash-loop backoff, failures inside the
master, worker recycling, stuck workers, a Redis outage."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
import uuid
from pathlib import Path

import psutil
import pytest
from rq import Queue
from rq.job import Job

from django_rq_pool.config.options import PoolOptions
from django_rq_pool.config.plan import PoolPlan, QueueGroup
from django_rq_pool.hooks import WorkerContext
from django_rq_pool.master.arbiter import Arbiter, WorkerRecord
from django_rq_pool.worker.entry import _max_jobs

from ..conftest import IN_CI
from ..harness import Pool, done_records, wait_for

PIDS_CGROUP = Path("/sys/fs/cgroup/pids")


def spawns(pool: Pool, queues: str) -> list[int]:
    return [int(pid) for pid in re.findall(rf"spawned worker (\d+) \[{re.escape(queues)}\]", pool.log())]


def title(process: psutil.Process | int) -> str:
    """The process title; psutil may split a setproctitle title at spaces."""
    return " ".join((process if isinstance(process, psutil.Process) else psutil.Process(process)).cmdline())


def master_title(pool: Pool) -> str:
    return title(pool.pid)


def master_cpu(pool: Pool) -> float:
    times = psutil.Process(pool.pid).cpu_times()
    return times.user + times.system


def terminal(job: Job) -> bool:
    return job.get_status(refresh=True) in ("finished", "failed")


def failed_with_reason(job: Job) -> bool:
    job.refresh()
    return job.get_status() == "failed" and bool(job.latest_result() and job.latest_result().exc_string)


# -- 1. crash-loop backoff ---------------------------------------------------------------


def test_crash_looping_list_backs_off_while_other_lists_run(pool_factory):
    """A raising after_prefork hook on [bar]: forks stay few, the master idles, [foo] is untouched."""
    pool = pool_factory("foo: 1\nbar: 2\n", env={"TEST_HOOKS": "prefork-raises:bar"}).start()
    pool.wait_log("queue list [bar] is failing (worker exited with status 3")
    wait_for(lambda: len(pool.worker_processes()) == 1, message="the [foo] worker")
    foo_worker = pool.worker_processes()[0].pid
    window_start, cpu_start = time.monotonic(), master_cpu(pool)
    wait_for(lambda: time.monotonic() - window_start > 30, timeout=40, message="a 30 s measuring window")
    bar_forks, cpu = len(spawns(pool, "bar")), master_cpu(pool) - cpu_start
    # Without backoff this would be hundreds of forks. With it (1, 2, 4, 8, 16 s, each -25% at worst),
    # a list forks at most 6 times in its first 30 s: the first probe is one worker, not two.
    assert 3 <= bar_forks <= 7, pool.log()[-3000:]
    assert cpu < 6, f"master used {cpu:.1f}s of CPU in 30 s"
    assert spawns(pool, "foo") == [foo_worker]
    assert [p.pid for p in pool.worker_processes() if "foo" in title(p)] == [foo_worker]
    log = pool.log()
    assert "after_prefork failed on purpose in [bar]" in log
    assert re.search(r"failed starts in a row, backing off: next start in [\d.]+s at \d\d:\d\d:\d\d", log)
    shown = master_title(pool)
    assert re.search(
        r"backing off \[bar\] until \d\d:\d\d:\d\d \(worker exited with status 3 [\d.]+s after start;", shown
    )
    assert "[foo]" not in shown.split("backing off", 1)[1]


def test_backoff_resets_once_a_worker_stays_up_min_uptime(pool_factory, tmp_path):
    flag = tmp_path / "failing"
    flag.touch()
    pool = pool_factory("foo: 1\n", ("--min-uptime", "2"), env={"TEST_PREFORK_FAILS_WHILE": str(flag)}).start()
    pool.wait_log("2 failed starts in a row")
    flag.unlink()
    pool.wait_log("queue list [foo] recovered: a worker stayed up 2s after")
    wait_for(lambda: "backing off" not in master_title(pool), message="title without backoff")
    (worker,) = pool.worker_processes()
    failures_before = pool.log().count("is failing")
    os.kill(worker.pid, signal.SIGKILL)  # a crash after a healthy run is not a failed start
    wait_for(lambda: len(spawns(pool, "foo")) >= 4 and pool.worker_processes(), message="an immediate replacement")
    assert pool.log().count("is failing") == failures_before


def test_give_up_after_exits_3_when_every_list_keeps_failing(pool_factory):
    """Every list's after_prefork hook raises (the cheapest real failed start): exit 3, saying why, nothing left."""
    pool = pool_factory("foo: 1\nbar: 1\n", ("--give-up-after", "2"), env={"TEST_HOOKS": "prefork-raises"}).start()
    assert pool.wait_exit(30) == 3
    log = pool.log()
    (last,) = [line for line in log.splitlines() if "master exiting with status" in line]
    assert re.search(
        r"ERROR +\[\d+\] \[master\] .*: master exiting with status 3: every queue list has failed to start for over "
        r"2s \(last failures: \[foo\] worker exited with status 3 [\d.]+s after start; "
        r"\[bar\] worker exited with status 3 [\d.]+s after start\)$",
        last,
    ), last
    for name in ("foo", "bar"):
        assert f"after_prefork failed on purpose in [{name}]" in log
        assert f"queue list [{name}] is failing (worker exited with status 3" in log
    wait_for(lambda: not pool.processes(), message="no worker or other process of the pool left")
    assert not pool.registered_workers()


def test_give_up_after_waits_while_one_list_is_healthy(pool_factory, queue, redis_client):
    pool = pool_factory("foo: 1\nbar: 1\n", ("--give-up-after", "2"), env={"TEST_HOOKS": "prefork-raises:bar"}).start()
    pool.wait_log("queue list [bar] is failing (worker exited with status 3")
    foo_worker = wait_for(
        lambda: list(pool.registered_workers()), message="the [foo] worker"
    )  # [bar]'s never get there
    pool.wait_log("4 failed starts in a row")  # [bar] failing for over 3 s, each failure a chance to give up
    assert pool.process.poll() is None, pool.log()[-3000:]
    assert "master exiting" not in pool.log()
    assert list(pool.registered_workers()) == foo_worker  # the same [foo] worker all along
    queue("foo").enqueue("testapp.jobs.record", "served")
    wait_for(lambda: [r["token"] for r in done_records(redis_client)] == ["served"], message="[foo] serving")
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0


# -- 3. failures inside the master --------------------------------------------------------


@pytest.fixture
def pids_cgroup():
    """A pids cgroup (v1) whose pids.max makes fork() fail with EAGAIN, as a real process limit does."""
    path = PIDS_CGROUP / f"rqpool-test-{uuid.uuid4().hex[:8]}"
    try:
        path.mkdir()
    except OSError as exc:
        if IN_CI:
            pytest.fail(f"a pids cgroup is required in CI: {exc}")
        pytest.skip(f"cannot create a pids cgroup: {exc}")
    try:
        yield path
    finally:
        for pid in (path / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                (PIDS_CGROUP / "cgroup.procs").write_text(pid)
        wait_for(lambda: not (path / "cgroup.procs").read_text().strip(), 10, "an empty cgroup")
        path.rmdir()


def test_failed_fork_is_logged_backed_off_and_survived(pool_factory, pids_cgroup):
    pool = pool_factory("foo: 2\n", ("--backoff-max", "3")).start()
    pool.wait_workers(2)
    (pids_cgroup / "cgroup.procs").write_text(str(pool.pid))
    (pids_cgroup / "pids.max").write_text("1")  # the master alone: every fork now fails with EAGAIN
    victim = pool.worker_processes()[0].pid
    os.kill(victim, signal.SIGKILL)
    pool.wait_log("fork failed: [Errno 11] Resource temporarily unavailable")
    pool.wait_log("queue list [foo] is failing (fork failed)")
    pool.wait_log("2 failed starts in a row")
    assert pool.process.poll() is None
    assert "backing off [foo]" in master_title(pool)
    (pids_cgroup / "pids.max").write_text("max")
    pool.wait_workers(2, timeout=30)
    pool.wait_log("queue list [foo] recovered")
    assert "Traceback" not in pool.log()


def test_raising_after_spawn_hook_is_logged_and_survived(pool_factory):
    pool = pool_factory("foo: 2\n", env={"TEST_HOOKS": "spawn-raises"}).start()
    pool.wait_workers(2)
    assert pool.log().count("after_spawn hook failed for worker") == 2
    assert "RuntimeError: after_spawn failed on purpose" in pool.log()
    victim = pool.worker_processes()[0].pid
    os.kill(victim, signal.SIGKILL)
    pool.wait_log(f"worker {victim} [foo] killed by SIGKILL")
    pool.wait_workers(2)
    assert pool.log().count("after_spawn hook failed for worker") == 3
    assert pool.process.poll() is None


def test_signalling_a_worker_that_is_already_gone_is_survived(caplog):
    """ESRCH: the master's record outlived the process (reaped elsewhere); a real kill() fails, the master goes on."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    group = QueueGroup(("foo",), 1)
    arbiter = Arbiter(PoolPlan((group,), "test"), PoolOptions())
    arbiter.roster.add(WorkerRecord(pid, WorkerContext(group, 0, "gone", os.getpid()), time.monotonic()))
    caplog.set_level("DEBUG", "django_rq_pool")
    for signum in (signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGCONT, signal.SIGKILL):
        arbiter.signal_workers(signum)
    assert f"worker {pid} already gone (SIGQUIT not sent)" in caplog.text
    assert arbiter.workers[pid].stopping


# -- 4. worker recycling ------------------------------------------------------------------


def test_max_jobs_jitter_spreads_retirements():
    draws = [_max_jobs(100) for _ in range(2000)]
    assert min(draws) >= 100 and max(draws) <= 110
    assert len(set(draws)) == 11  # every value of the 10% spread occurs
    assert _max_jobs(None) is None


def test_max_jobs_recycles_workers_with_real_jobs(pool_factory, queue, redis_client):
    pool = pool_factory("foo: {count: 2, max_jobs: 10}\n").start()
    pool.wait_workers(2)
    jobs = [queue("foo").enqueue("testapp.jobs.record", f"job-{n}") for n in range(50)]
    wait_for(lambda: len(done_records(redis_client)) == 50, 60, "50 jobs recorded")
    per_worker: dict[int, int] = {}
    for record in done_records(redis_client):
        per_worker[record["worker_pid"]] = per_worker.get(record["worker_pid"], 0) + 1
    assert max(per_worker.values()) <= 11  # 10 plus at most 10% jitter
    assert len(per_worker) >= 5
    assert all(terminal(job) and job.get_status() == "finished" for job in jobs)
    assert "finished executing" in pool.log()
    pool.wait_workers(2)
    assert "is failing" not in pool.log()  # a retirement is not a failed start


def test_memory_limit_retires_a_worker_after_its_job(pool_factory, queue, redis_client):
    """SimpleWorker keeps what a job allocates; unique memory (USS) over the limit retires the worker."""
    config = "foo: {count: 1, worker_class: rq.worker.SimpleWorker, memory_limit: 100MB}\n"
    pool = pool_factory(config).start()
    pool.wait_workers(1)
    jobs = [queue("foo").enqueue("testapp.jobs.hold_memory", 60) for _ in range(4)]
    wait_for(lambda: all(terminal(job) for job in jobs), 60, "4 memory jobs")
    assert [job.get_status() for job in jobs] == ["finished"] * 4
    per_worker: dict[int, int] = {}
    for record in done_records(redis_client):
        per_worker[record["pid"]] = per_worker.get(record["pid"], 0) + 1  # SimpleWorker: the job runs in the worker
    assert max(per_worker.values()) <= 2 and len(per_worker) >= 2, per_worker
    assert re.search(r"unique memory \d+ MiB is over the limit of 100 MiB; retiring", pool.log())
    pool.wait_workers(1)
    assert "is failing" not in pool.log()


# -- 5. stuck workers ---------------------------------------------------------------------


def test_stuck_worker_is_killed_replaced_and_its_job_failed(pool_factory, queue, redis_client):
    pool = pool_factory("foo: 2\n", ("--stuck-timeout", "4")).start()
    pool.wait_workers(2)
    stuck_job = queue("foo").enqueue("testapp.jobs.sleep_then_record", "stuck", 60, job_timeout=120)
    wait_for(lambda: stuck_job.get_status(refresh=True) == "started", message="the job to start")
    stuck_worker = next(p for p in pool.worker_processes() if "Forked" in title(p))
    horse = int(re.search(r"Forked (\d+)", title(stuck_worker)).group(1))
    os.kill(stuck_worker.pid, signal.SIGSTOP)
    long_job = queue("foo").enqueue("testapp.jobs.sleep_then_record", "long", 8)  # longer than the stuck timeout
    pool.wait_log(f"worker {stuck_worker.pid} [foo] is stuck: no heartbeat in Redis for", timeout=30)
    wait_for(lambda: failed_with_reason(stuck_job), 30, "the stuck worker's job to fail")
    assert "stuck: no heartbeat in Redis" in stuck_job.latest_result().exc_string
    wait_for(lambda: not psutil.pid_exists(horse), message="its job child killed")
    wait_for(lambda: long_job.get_status(refresh=True) == "finished", 30, "the long job of the healthy worker")
    pool.wait_workers(2)
    assert pool.log().count("is stuck") == 1  # the busy but heartbeating worker was left alone
    assert "stuck" not in {r["token"] for r in done_records(redis_client)}


# -- 2. Redis outage ----------------------------------------------------------------------


def test_redis_outage_is_survived_and_every_job_accounted_for(durable_redis, tmp_path):
    pool = Pool(durable_redis, tmp_path, "foo: 2\n", ("--backoff-max", "4"))
    client = durable_redis.client()
    try:
        pool.start()
        pool.wait_workers(2)
        foo = Queue("foo", connection=client)
        before = [foo.enqueue("testapp.jobs.sleep_then_record", f"before-{n}", 0.5) for n in range(16)]
        wait_for(lambda: len(done_records(client)) >= 2, message="work in progress")
        durable_redis.stop()
        outage = time.monotonic()
        pool.wait_log("queue list [foo] is failing", timeout=30)  # workers die without Redis and back off
        wait_for(lambda: time.monotonic() - outage >= 10, 15, "a 10 s outage")
        assert pool.process.poll() is None
        durable_redis.start()
        client = durable_redis.client()
        after = [Queue("foo", connection=client).enqueue("testapp.jobs.record", f"after-{n}") for n in range(4)]
        jobs = [Job.fetch(job.id, connection=client) for job in before] + after
        wait_for(lambda: all(terminal(job) for job in jobs), 90, "every job finished or failed")
        failed = [job for job in jobs if job.get_status() == "failed"]
        assert all(failed_with_reason(job) for job in failed)
        assert len(failed) <= 2  # at most the jobs running when Redis went away
        done = {r["token"] for r in done_records(client)}
        assert all(job.args[0] in done for job in jobs if job.get_status() == "finished")
        assert pool.process.poll() is None
        pool.wait_workers(2, timeout=30)
        pool.wait_log("queue list [foo] recovered", timeout=30)  # a worker stayed up --min-uptime
    finally:
        pool.cleanup()


def test_warm_stop_of_idle_workers_ends_their_blocking_dequeue_without_losing_jobs(pool_factory, queue):
    """QUIT to idle workers: Redis unblocks their BLMOVE/BLPOP (30 s timeout) at once, nothing is dequeued.

    The pool replaced rq's raise-from-the-handler (which can lose a job handed over at that instant: the
    chaos test caught it) by CLIENT UNBLOCK; this proves the replacement still stops idle workers promptly.
    """
    pool = pool_factory('foo: 2\n"bar,baz": 2\n').start()
    pool.wait_workers(4)
    started = time.monotonic()
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit(20) == 0
    assert time.monotonic() - started < 15  # the dequeue timeout is 30 s: they did not wait it out
    log = pool.log()
    assert log.count("SIGQUIT: warm stop") == 4 and log.count("registering death") == 4, log[-3000:]
    assert "cannot interrupt" not in log and "unhandled exception" not in log
    jobs = [queue(name).enqueue("testapp.jobs.record", name) for name in ("foo", "bar", "baz")]
    assert [job.get_status(refresh=True) for job in jobs] == ["queued"] * 3
    assert [queue(name).count for name in ("foo", "bar", "baz")] == [1, 1, 1]
