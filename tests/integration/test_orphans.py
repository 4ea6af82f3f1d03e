"""Orphan safety (issue 3, section 3): workers never outlive their master; the master as PID 1."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import psutil
import pytest

from ..harness import MANAGE, Pool, wait_for
from .lifecycle import SLOW, assert_failed_with, assert_nothing_left, status, wait_started, wait_status, zombie_children


def test_kill_9_of_the_master_lets_each_worker_finish_its_job_and_exit(pool_factory, queue, redis_client):
    pool = pool_factory("foo: 1\nbar: 1\n").start()
    pool.wait_workers(2)
    idle = next(p for p in pool.worker_processes() if p.cmdline()[0].endswith("Listening on bar"))
    job = queue("foo").enqueue(SLOW, "orphaned", 4)
    wait_started(redis_client)
    os.kill(pool.pid, signal.SIGKILL)
    assert pool.wait_exit() == -signal.SIGKILL
    wait_for(lambda: not idle.is_running() or idle.status() == psutil.STATUS_ZOMBIE, 5, "the idle worker to exit")
    assert status(job) == "started"  # the busy one is still finishing its job
    wait_status(job, "finished")
    assert_nothing_left(pool, redis_client, timeout=10)


def test_an_unexpected_master_error_exits_1_and_lets_each_worker_finish_its_job(
    pool_factory, queue, redis_client, tmp_path
):
    fault = tmp_path / "fault"
    pool = pool_factory("foo: 2\n", env={"TEST_MASTER_FAULT": str(fault)}).start()
    pool.wait_workers(2)
    job = queue("foo").enqueue(SLOW, "in-flight", 3)
    wait_started(redis_client)
    fault.touch()
    pool.signal(signal.SIGCONT)  # an idle master sleeps until something happens; CONT is harmless
    assert pool.wait_exit() == 1
    log = pool.log()
    assert "master failed:" in log
    assert "RuntimeError: injected fault" in log
    assert (
        "master exiting with status 1: unexpected RuntimeError: injected fault; its workers finish their jobs and stop"
        in log
    )
    wait_status(job, "finished")
    assert_nothing_left(pool, redis_client, timeout=10)


def _in_namespace(pool) -> dict[str, psutil.Process]:
    """The master (PID 1 inside) and its workers, seen with this side's pids."""
    for proc in pool.processes():
        try:
            if proc.cmdline()[0].startswith("rqpool-master["):
                return {"master": proc, **{str(c.pid): c for c in proc.children() if _is_worker(c)}}
        except psutil.Error:
            continue
    return {}


def _is_worker(proc: psutil.Process) -> bool:
    try:
        return proc.cmdline()[0].startswith("rq:worker:")
    except psutil.Error:
        return False


def _idle_workers(redis_client, count: int) -> bool:
    names = [key.decode() for key in redis_client.smembers("rq:workers")]
    states = [redis_client.hget(name, "state") for name in names]
    return len(names) == count and all(state == b"idle" for state in states)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare(1)")
def test_master_as_pid_1_reaps_adopted_processes_and_does_not_think_it_is_orphaned(pool_factory, queue, redis_client):
    pool = start_as_pid_1(pool_factory("foo: 2\n"))
    wait_for(lambda: len(_in_namespace(pool)) == 3 and _idle_workers(redis_client, 2), 30, "master and 2 workers")
    tree = _in_namespace(pool)
    master = tree.pop("master")
    assert master.ppid() == pool.pid  # unshare's child: PID 1 inside its namespace
    assert all(name.startswith("rq:worker:") and ".1." in name for name in (w.cmdline()[0] for w in tree.values()))
    orphan_job = queue("foo").enqueue("testapp.signal_jobs.leave_orphan", "pid1", 1)
    wait_status(orphan_job, "finished")
    grandchild = orphan_job.return_value()
    pool.wait_log(f"reaped process {grandchild} (not a worker: exited with status 0)")
    assert zombie_children(master.pid) == []

    slow = queue("foo").enqueue(SLOW, "victim", 60)
    (record,) = wait_started(redis_client)
    victim = next(w for w in tree.values() if ns_pid(w.pid) == record["worker_pid"])
    survivor = next(w for w in tree.values() if w is not victim)
    os.kill(victim.pid, signal.SIGKILL)
    assert_failed_with(slow, redis_client, "killed by SIGKILL while running this job; failed by rqpool")
    pool.wait_log("of a dead worker")  # its job child, adopted by PID 1, was killed
    wait_for(lambda: _idle_workers(redis_client, 2), 30, "the replacement worker")
    later = queue("foo").enqueue("testapp.jobs.record", "after")
    wait_status(later, "finished")
    assert survivor.is_running() and survivor.ppid() == master.pid  # no misfired orphan exit

    os.kill(master.pid, signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)
    assert redis_client.smembers("rq:workers") == set()


def start_as_pid_1(pool: Pool) -> Pool:
    """Start the pool's master as PID 1 of a new pid namespace, as in a container without an init."""
    pool._log = pool.log_path.open("ab")
    pool.process = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, str(MANAGE), "rqpool", "-v", "2", *pool.args],
        cwd=pool.workdir,
        env=pool.env,
        stdout=pool._log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    return pool


def ns_pid(pid: int) -> int:
    """The pid a process has inside its own (innermost) pid namespace."""
    with open(f"/proc/{pid}/status") as status_file:
        line = next(line for line in status_file if line.startswith("NSpid:"))
    return int(line.split()[-1])
