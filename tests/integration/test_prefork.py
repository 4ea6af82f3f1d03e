"""``prefork_job_child: true``: the idle worker's next job child is forked ahead and handed the job."""

from __future__ import annotations

import os
import signal

import psutil

from ..harness import Pool, done_records, wait_for
from .lifecycle import SLOW, assert_failed_with, assert_nothing_left, status, wait_started, wait_status
from .test_operations import LOG_JOB, read, wait_text

PREFORK = "foo:\n  count: {count}\n  prefork_job_child: true\n"
WAITING = "job child waiting for a job"


def waiting_children(worker_pid: int) -> list[psutil.Process]:
    """The worker's children titled as a waiting job child (none while a job runs)."""
    found = []
    for child in psutil.Process(worker_pid).children():
        try:
            if WAITING in child.cmdline()[0] and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except (psutil.Error, IndexError):
            continue
    return found


def waiting_child(worker_pid: int) -> psutil.Process:
    return wait_for(lambda: (found := waiting_children(worker_pid)) and found[0], message="a waiting job child")


def gone(process: psutil.Process) -> bool:
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def stop_cleanly(pool, redis_client) -> None:
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)


def test_jobs_run_in_the_child_forked_before_them(pool_factory, queue, redis_client):
    pool = pool_factory(PREFORK.format(count=1) + '"foo,bar":\n  count: 1\n  prefork_job_child: true\n').start()
    pool.wait_workers(2)
    # Both workers serve foo: the job may go to either one's waiting child.
    waiting_of = {waiting_child(worker.pid).pid: worker.pid for worker in pool.worker_processes()}
    assert all(os.getpgid(pid) == pid for pid in waiting_of)  # its own process group, as rq's job child
    first = queue("foo").enqueue("testapp.jobs.record_environ", "first")
    wait_status(first, "finished")
    (record,) = done_records(redis_client)
    assert record["pid"] in waiting_of  # the job ran in a child that waited for it
    assert record["worker_pid"] == waiting_of[record["pid"]]
    assert record["RQ_JOB_ID"] == first.id
    assert record["RQ_WORKER_ID"] in pool.registered_workers()
    assert first.return_value() == "first"
    wait_for(  # the next one is forked once the worker has reaped the first
        lambda: any(child.pid != record["pid"] for child in waiting_children(record["worker_pid"])),
        message="the next waiting job child",
    )
    failing = queue("foo").enqueue("testapp.jobs.fail", "prefork boom")
    timing_out = queue("foo").enqueue("testapp.jobs.sleep_then_record", "late", 30, job_timeout=1)
    multi = [queue(name).enqueue("testapp.jobs.record", f"multi-{name}") for name in ("bar", "foo", "bar")]
    assert_failed_with(failing, redis_client, "RuntimeError: prefork boom")
    assert_failed_with(timing_out, redis_client, "JobTimeoutException")
    for job in multi:
        wait_status(job, "finished")
    stop_cleanly(pool, redis_client)


def one_waiting_worker(pool_factory) -> tuple[Pool, psutil.Process, psutil.Process]:
    """A pool of one pre-forking worker, the worker and its waiting job child."""
    pool = pool_factory(PREFORK.format(count=1)).start()
    pool.wait_workers(1)
    (worker,) = pool.worker_processes()
    return pool, worker, waiting_child(worker.pid)


def test_kill_9_of_a_worker_whose_child_waits_leaves_no_orphan_and_loses_no_job(pool_factory, queue, redis_client):
    pool, worker, waiting = one_waiting_worker(pool_factory)
    os.kill(worker.pid, signal.SIGKILL)
    pool.wait_log(f"worker {worker.pid} [foo] killed by SIGKILL")
    wait_for(lambda: gone(waiting), message=f"the waiting job child {waiting.pid} to end")
    job = queue("foo").enqueue("testapp.jobs.record", "after-kill")
    wait_status(job, "finished")
    stop_cleanly(pool, redis_client)


def test_a_waiting_child_killed_by_someone_else_is_reaped_at_once(pool_factory, queue, redis_client):
    pool, worker, waiting = one_waiting_worker(pool_factory)
    os.kill(waiting.pid, signal.SIGKILL)
    wait_for(  # not left a zombie until the worker's next job
        lambda: waiting.pid not in {child.pid for child in psutil.Process(worker.pid).children()},
        message=f"the worker to reap its killed waiting child {waiting.pid}",
    )
    job = queue("foo").enqueue("testapp.jobs.record", "after-the-kill")
    wait_status(job, "finished")
    assert record_pids(redis_client)["after-the-kill"] != waiting.pid
    assert pool.worker_processes()[0].pid == worker.pid  # the worker lived on
    waiting_child(worker.pid)  # and keeps the next job child waiting again
    pool.wait_log(f"the waiting job child {waiting.pid} is gone; forking one")
    stop_cleanly(pool, redis_client)


def test_warm_stop_and_reload_end_the_waiting_children(pool_factory, queue, redis_client):
    pool = pool_factory(PREFORK.format(count=2)).start()
    pool.wait_workers(2)
    waiting = [waiting_child(worker.pid) for worker in pool.worker_processes()]
    pool.write_config("foo: 2\n")  # the option changed: both workers are replaced
    pool.signal(signal.SIGHUP)
    pool.wait_log("HUP: reloaded 2 workers")
    wait_for(lambda: all(gone(child) for child in waiting), message="the old waiting job children to end")
    pool.wait_workers(2)
    assert all(not waiting_children(worker.pid) for worker in pool.worker_processes())
    plain = {worker.pid for worker in pool.worker_processes()}
    pool.write_config(PREFORK.format(count=2))
    pool.signal(signal.SIGHUP)
    wait_for(lambda: pool.log().count("HUP: reloaded 2 workers") == 2, message="the second reload")

    def preforking_workers() -> bool:
        workers = pool.worker_processes()
        fresh = len(workers) == 2 and not plain & {worker.pid for worker in workers}
        return fresh and all(waiting_children(worker.pid) for worker in workers)

    wait_for(preforking_workers, message="two new workers, each with a waiting job child")
    busy = queue("foo").enqueue(SLOW, "finishes", 2)
    wait_started(redis_client)
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert status(busy) == "finished"
    assert_nothing_left(pool, redis_client)


def test_a_waiting_child_logs_to_the_file_reopened_after_its_fork(pool_factory, queue, redis_client, tmp_path):
    logs = tmp_path / "logs"
    pool = pool_factory(PREFORK.format(count=1), args=("--log-file", f"{logs}/{{queues}}-{{index}}.log")).start()
    pool.wait_workers(1)
    (worker,) = pool.worker_processes()
    foo_log = logs / "foo-0.log"
    queue("foo").enqueue(LOG_JOB, "before-rotate")
    wait_text(foo_log, "job log line before-rotate")
    waiting = waiting_child(worker.pid)
    foo_log.rename(foo_log.with_suffix(".log.1"))  # what logrotate does
    pool.signal(signal.SIGHUP)
    wait_text(logs / "master-master.log", "HUP: reloaded")
    queue("foo").enqueue(LOG_JOB, "after-rotate")
    wait_text(foo_log, "job log line after-rotate")
    assert record_pids(redis_client)["after-rotate"] == waiting.pid  # forked before the HUP
    assert "after-rotate" not in read(logs / "foo-0.log.1")
    stop_cleanly(pool, redis_client)


def record_pids(redis_client) -> dict[str, int]:
    return {record["token"]: record["pid"] for record in done_records(redis_client)}


def test_max_jobs_retires_a_worker_without_leaving_its_waiting_child(pool_factory, queue, redis_client):
    pool = pool_factory("foo:\n  count: 1\n  max_jobs: 2\n  prefork_job_child: true\n").start()
    pool.wait_workers(1)
    (worker,) = pool.worker_processes()
    jobs = [queue("foo").enqueue("testapp.jobs.record", f"m{n}") for n in range(6)]
    for job in jobs:
        wait_status(job, "finished")
    pool.wait_log(f"worker {worker.pid} [foo] exited with status 0")
    assert not psutil.pid_exists(worker.pid) or gone(psutil.Process(worker.pid))
    stop_cleanly(pool, redis_client)
