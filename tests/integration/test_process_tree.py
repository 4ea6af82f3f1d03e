"""The whole process tree (issue 3, sections 4 and 5): a killed worker's children, titles, ``ps -ef f``."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess

import psutil
import pytest

from ..harness import done_records, wait_for
from .lifecycle import SLOW, assert_failed_with, assert_nothing_left, gone, wait_started, wait_status, zombie_children

WITH_SCHEDULER = "foo:\n  count: 1\n  with_scheduler: true\n"


def _reapable(pid: int) -> bool:
    """Dead and waitable: a zombie leader whose other threads (rq's pub/sub) have exited too."""
    try:
        return gone(pid) and len(os.listdir(f"/proc/{pid}/task")) <= 1
    except FileNotFoundError:
        return True


def _scheduler_of(worker: psutil.Process, horse: int | None = None) -> int:
    children = [c.pid for c in worker.children() if c.pid != horse]
    assert len(children) == 1, children
    return children[0]


def test_kill_9_of_a_busy_worker_kills_its_job_child_and_scheduler_and_fails_the_job(pool_factory, queue, redis_client):
    pool = pool_factory(WITH_SCHEDULER).start()
    pool.wait_workers(1)
    pool.wait_log("Scheduler for foo started with PID")
    (worker,) = pool.worker_processes()
    (name,) = pool.registered_workers()
    job = queue("foo").enqueue(SLOW, "victim", 60)
    (record,) = wait_started(redis_client)
    horse = record["pid"]
    scheduler = _scheduler_of(worker, horse)
    os.kill(worker.pid, signal.SIGKILL)
    wait_for(lambda: gone(horse) and gone(scheduler), 10, "the job child and the scheduler to die")
    text = assert_failed_with(job, redis_client, f"worker {name} (pid {worker.pid}, queues foo) killed by SIGKILL")
    assert "while running this job; failed by rqpool" in text
    wait_for(lambda: name not in pool.registered_workers(), 10, "the janitor to unregister the dead worker")
    pool.wait_workers(1)
    later = [queue("foo").enqueue("testapp.jobs.record", f"later-{n}") for n in range(3)]
    for item in later:
        wait_status(item, "finished")
    assert redis_client.llen("rq:queue:foo:intermediate") == 0
    assert zombie_children(pool.pid) == []
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)


def test_kill_9_of_an_idle_worker_strands_no_job(pool_factory, queue, redis_client):
    """Its scheduler held the dead worker's Redis socket with a BLMOVE pending: the next job would vanish."""
    pool = pool_factory(WITH_SCHEDULER).start()
    pool.wait_workers(1)
    pool.wait_log("Scheduler for foo started with PID")
    (worker,) = pool.worker_processes()
    scheduler = _scheduler_of(worker)
    os.kill(worker.pid, signal.SIGKILL)
    pool.wait_log(f"killed orphaned process {scheduler} ")
    jobs = [queue("foo").enqueue("testapp.jobs.record", f"next-{n}") for n in range(3)]
    for job in jobs:
        wait_status(job, "finished")
    assert redis_client.llen("rq:queue:foo:intermediate") == 0
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)


@pytest.mark.skipif(shutil.which("ps") is None, reason="needs ps(1)")
def test_titles_show_three_levels_in_ps_forest(pool_factory, queue, redis_client):
    pool = pool_factory("foo: 1\nbar: 1\n", args=("-a", "shop")).start()
    pool.wait_workers(2)
    queue("foo").enqueue(SLOW, "titled", 30)
    (record,) = wait_started(redis_client)
    workers = sorted(p.pid for p in pool.worker_processes())
    pattern = r"rqpool-master\[shop\]: running: managing \[\d+, \d+\] \(2/2 workers\)"
    title = wait_for(
        lambda: re.fullmatch(pattern, t := psutil.Process(pool.pid).cmdline()[0]) and t, message="the running title"
    )
    assert sorted(int(pid) for pid in re.findall(r"\d+", title.split("managing")[1])[:2]) == workers
    wide = {**os.environ, "COLUMNS": "10000"}
    forest = subprocess.run(
        ["ps", "-ef", "f"], capture_output=True, text=True, check=True, env=wide
    ).stdout.splitlines()
    rows = {int(line.split()[1]): line for line in forest[1:]}
    master_at = rows[pool.pid].index("rqpool-master[shop]: running: managing [")
    for pid in workers:  # one level under the master: rq's own title
        assert re.match(r"rq:worker:\S+: Listening on (foo|bar)|rq:worker:\S+: Forked", rows[pid][master_at + 4 :])
    job_child = rows[record["pid"]][master_at + 8 :]  # two levels under the master
    assert re.match(r"rq:worker:\S+: Processing testapp\.signal_jobs\.slow from foo", job_child), job_child
    pool.signal(signal.SIGQUIT)
    wait_for(lambda: ": stopping: managing [" in psutil.Process(pool.pid).cmdline()[0], message="title 'stopping'")
    pool.signal(signal.SIGUSR1)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)


def test_the_janitor_finishes_its_accounting_through_ctrl_c_and_term(pool_factory, queue, redis_client):
    pool = pool_factory("foo: 1\n").start()
    pool.wait_workers(1)
    (worker,) = pool.worker_processes()
    job = queue("foo").enqueue(SLOW, "janitor", 60)
    wait_started(redis_client)
    redis_client.execute_command("CLIENT", "PAUSE", "8000", "WRITE")  # the janitor waits on its first write
    os.kill(worker.pid, signal.SIGKILL)

    def janitor() -> psutil.Process | None:
        for child in psutil.Process(pool.pid).children():
            with contextlib.suppress(psutil.Error):
                if (child.cmdline() or [""])[0].startswith("rqpool-janitor[testproject]: "):
                    return child
        return None

    found = wait_for(janitor, 10, "the janitor")
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
        found.send_signal(signum)
    assert found.is_running() and found.status() != psutil.STATUS_ZOMBIE
    assert_failed_with(job, redis_client, "killed by SIGKILL while running this job; failed by rqpool")
    pool.wait_log(f"janitor {found.pid} for worker ")
    assert re.search(rf"janitor {found.pid} for worker \S+ exited with status 0", pool.log())
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)


def test_a_worker_death_kills_only_its_own_descendants(pool_factory, queue, redis_client):
    """Processes a finished [foo] job left running are not the killed [bar] worker's: they live on."""
    pool = pool_factory("foo: 1\nbar: 1\n").start()
    pool.wait_workers(2)
    left = []
    try:
        detached = queue("foo").enqueue("testapp.signal_jobs.detach", "daemon", 300)
        orphan = queue("foo").enqueue("testapp.signal_jobs.leave_orphan", "orphan", 300)
        for job in (detached, orphan):
            wait_status(job, "finished")
            left.append(psutil.Process(job.return_value()))
        wait_for(lambda: all(p.ppid() == pool.pid for p in left), 10, "the master to adopt both")
        (bar,) = [p for p in pool.worker_processes() if p.cmdline()[0].endswith("Listening on bar")]
        os.kill(bar.pid, signal.SIGKILL)
        pool.wait_log(f"worker {bar.pid} [bar] killed by SIGKILL")
        # Not wait_workers(): the adopted fork of a job child carries the job child's rq title.
        wait_for(lambda: pool.log().count("spawned worker") == 3, message="the replacement of the [bar] worker")
        assert all(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in left)
        assert "killed orphaned process" not in pool.log()
        pool.signal(signal.SIGQUIT)
        assert pool.wait_exit() == 0
        assert all(p.is_running() for p in left)  # a pool stop leaves them too (docs/architecture.md)
    finally:
        for proc in left:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
    wait_for(lambda: all(gone(p.pid) for p in left), 10, "the adopted processes to die")
    assert_nothing_left(pool, redis_client)


@pytest.mark.parametrize(
    ("stop", "args"), [(signal.SIGINT, ()), (signal.SIGTERM, ("--term", "graceful"))], ids=["int", "term-graceful"]
)
def test_a_worker_death_handled_with_an_exiting_stop_still_gets_its_janitor(
    pool_factory, queue, redis_client, stop, args
):
    """The death and the stop signal reach the master in the same pass: the janitor is forked before it exits."""
    pool = pool_factory("foo: 1\n", args=args).start()
    pool.wait_workers(1)
    (worker,) = pool.worker_processes()
    job = queue("foo").enqueue(SLOW, "victim", 60)
    wait_started(redis_client)
    os.kill(pool.pid, signal.SIGSTOP)
    try:
        os.kill(worker.pid, signal.SIGKILL)
        wait_for(lambda: _reapable(worker.pid), 10, "the worker to die")
        pool.signal(stop)
    finally:
        os.kill(pool.pid, signal.SIGCONT)
    assert pool.wait_exit() == 0
    try:
        assert_failed_with(
            job, redis_client, f"(pid {worker.pid}, queues foo) killed by SIGKILL while running this job"
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}; log:\n{pool.log()[-6000:]}") from None
    assert_nothing_left(pool, redis_client)


def test_a_job_registered_by_a_worker_killed_before_starting_it_runs_once_elsewhere(pool_factory, queue, redis_client):
    """The janitor knows whose registered job it is on every supported rq (rq < 2.11 through compat.py)."""
    pool = pool_factory("foo:\n  count: 1\n  worker_class: testapp.workers.DiesAfterRegisteringJob\n").start()
    pool.wait_workers(1)
    (worker,) = pool.worker_processes()
    job = queue("foo").enqueue("testapp.jobs.record", "die-before-start")
    pool.wait_log(f"worker {worker.pid} [foo] killed by SIGKILL")
    wait_status(job, "finished")
    pool.wait_log(f"job {job.id} of dead worker ")
    assert "never started; put back at the head of foo" in pool.log()
    assert [record["job"] for record in done_records(redis_client)] == [job.id]
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)


def test_a_failing_janitor_logs_its_traceback_and_exits_1(pool_factory, redis_client):
    pool = pool_factory("foo: 1\n", env={"TEST_JANITOR_FAULT": "1"}).start()
    pool.wait_workers(1)
    (worker,) = pool.worker_processes()
    os.kill(worker.pid, signal.SIGKILL)
    pool.wait_log("exited with status 1")
    log = pool.log()
    failure = re.search(r"\[(\d+)\] \[janitor:foo\] django_rq_pool\.common\.child: janitor failed\n", log)
    assert failure, log
    assert "Traceback (most recent call last):" in log[failure.end() :]
    assert "RuntimeError: injected janitor fault" in log[failure.end() :]
    assert re.search(rf"janitor {failure.group(1)} for worker \S+ exited with status 1", log)
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
