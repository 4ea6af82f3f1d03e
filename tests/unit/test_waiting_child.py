"""The waiting job child's pipe, with a real forked child, and which worker classes may pre-fork."""

from __future__ import annotations

import os
import signal

import rq.worker
from rq.worker import SimpleWorker, Worker

from django_rq_pool.worker.mixin import PoolWorkerMixin
from django_rq_pool.worker.prefork import PreforkMixin, forks_like_rq
from django_rq_pool.worker.waiting_child import WaitingChild, read_hand_over

from .test_worker_fork import CustomForkWorker


def fork_reader() -> WaitingChild:
    """A child that exits 0 if it reads the expected mapping, 3 at end of file, 1 otherwise."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(write_fd)
        message = read_hand_over(read_fd)
        os._exit(3 if message is None else 0 if message == {"job_id": "j", "data": b"x" * 200_000} else 1)
    os.close(read_fd)
    return WaitingChild(pid, write_fd)


def test_the_child_reads_a_hand_over_larger_than_the_pipe_buffer():
    child = fork_reader()
    assert child.hand_over({"job_id": "j", "data": b"x" * 200_000})
    assert child.write_fd == -1
    _, status = os.waitpid(child.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_child_that_died_is_not_handed_the_job_and_end_is_safe():
    child = fork_reader()
    os.kill(child.pid, signal.SIGKILL)
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # dead, not yet reaped
    assert not child.hand_over({"job_id": "j"})
    assert child.reaped
    child.end()
    assert child.write_fd == -1


def test_end_kills_and_reaps_a_waiting_child():
    child = fork_reader()
    child.end()
    assert child.reaped
    try:
        os.kill(child.pid, 0)
        raise AssertionError(f"{child.pid} still exists")
    except ProcessLookupError:
        pass


def test_only_rqs_own_fork_is_preforked():
    def pooled(base: type) -> type:
        return type(f"Pool{base.__name__}", (PreforkMixin, PoolWorkerMixin, base), {})

    def worker_of(base: type) -> object:
        return object.__new__(pooled(base))  # no Redis needed: only the method resolution is under test

    assert forks_like_rq(worker_of(Worker))
    assert not forks_like_rq(worker_of(SimpleWorker))
    spawn_worker = getattr(rq.worker, "SpawnWorker", None)  # rq 2.6 has none
    assert spawn_worker is None or not forks_like_rq(worker_of(spawn_worker))
    assert not forks_like_rq(worker_of(CustomForkWorker))
