"""Fault injection for paths no input reaches.

* ``$TEST_MASTER_FAULT`` names a file: the master's loop raises once that file exists.
* ``$TEST_JANITOR_FAULT`` set: every janitor raises instead of accounting for its worker.
* ``$TEST_DEQUEUE_KILL`` is ``POINT:DIRECTORY``: the first worker to reach POINT on its way from the
  dequeue to the job child writes ``DIRECTORY/POINT`` (its pid and the job id), then is SIGKILLed
  there. Points, in path order: ``claimed`` (a queue had a job: the claim moved it), ``claimed-after-wait``
  (the queues were empty: the blocking wait returned it), ``dequeued`` (fetched, before registration),
  ``registered`` (before the fork), ``job-child`` (in the job child before it marks the job started:
  the worker and its job child are both killed), ``orphaned-job-child`` (the job child kills the worker
  before it marks the job started, and the worker never named it on its lineage page).
* ``$TEST_DEQUEUE_FAIL`` is ``POINT:DIRECTORY``: the first worker to reach POINT writes ``DIRECTORY/POINT``
  (pid and job id) and gets a ``redis.ConnectionError`` there, once, as in a Redis outage: ``fetch``
  (the job's fetch right after a multi-queue claim: rq dequeues again) or ``register`` (before the
  worker registers the job: rq's loop quits).
* ``$TEST_REDIS_KILL`` is ``POINT:PID:DIRECTORY``: the first worker to reach POINT writes ``DIRECTORY/POINT``
  (its pid), SIGKILLs the redis-server PID and waits for it to be gone before going on: its next command
  meets a real outage, at that exact point. Points: ``slice-end`` (its blocking dequeue timed out: an idle
  worker's slice ended), ``pause`` (USR2 seen, before it reports SUSPENDED), ``resume`` (CONT seen, before
  it reports IDLE again).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any


def install(path: str) -> None:
    from django_rq_pool.master.arbiter import Arbiter

    original = Arbiter.update_title

    def update_title(self: Arbiter) -> None:
        if os.path.exists(path) and os.getpid() == self.pid:
            raise RuntimeError("injected fault")
        original(self)

    Arbiter.update_title = update_title  # type: ignore[method-assign]


def _first_to_reach(directory: str, point: str, job_id: str) -> bool:
    try:
        fd = os.open(os.path.join(directory, point), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, f"{os.getpid()} {job_id}".encode())
    os.close(fd)
    return True


def _die(*, with_parent: bool = False) -> None:
    if with_parent:
        os.kill(os.getppid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def install_dequeue_kill(spec: str) -> None:
    point, directory = spec.split(":", 1)
    if point in ("claimed", "claimed-after-wait"):
        from django_rq_pool.worker import dequeue

        name = "claim_first" if point == "claimed" else "wait_and_claim"
        original: Callable[..., Any] = getattr(dequeue, name)

        def claim(*args: Any, **kwargs: Any) -> Any:
            claimed = original(*args, **kwargs)
            if claimed is not None and _first_to_reach(directory, point, claimed[1]):
                _die()
            return claimed

        setattr(dequeue, name, claim)
        return
    from rq.worker import BaseWorker

    if point in ("dequeued", "registered"):
        from django_rq_pool.compat import WORKER_SHIMS

        for owner in (BaseWorker, *WORKER_SHIMS):  # on rq < 2.11 a shim registers the execution
            _kill_around_prepare_execution(owner, point, directory)
    elif point == "job-child":
        prepare_job = BaseWorker.prepare_job_execution

        def prepare_job_execution(self: BaseWorker, job: Any, *args: Any, **kwargs: Any) -> None:
            if _first_to_reach(directory, point, job.id):
                _die(with_parent=True)
            prepare_job(self, job, *args, **kwargs)

        BaseWorker.prepare_job_execution = prepare_job_execution  # type: ignore[method-assign]
    elif point == "orphaned-job-child":
        _orphan_the_first_job_child(directory, point)
    else:
        raise ValueError(f"TEST_DEQUEUE_KILL: unknown point {point!r}")


def _orphan_the_first_job_child(directory: str, point: str) -> None:
    """The worker is killed before its lineage page names the job child, which then goes on to the job."""
    import time

    from rq.worker import BaseWorker

    from django_rq_pool.worker.state import PoolWorkerState

    record = PoolWorkerState._pool_record_lineage

    def record_without_job_child(self: Any, job_child: int) -> None:
        record(self, 0)

    PoolWorkerState._pool_record_lineage = record_without_job_child  # type: ignore[method-assign]
    prepare_job = BaseWorker.prepare_job_execution

    def prepare_job_execution(self: BaseWorker, job: Any, *args: Any, **kwargs: Any) -> None:
        if _first_to_reach(directory, point, job.id):
            os.kill(os.getppid(), signal.SIGKILL)
            time.sleep(1)  # meanwhile the janitor finds the job registered and not started
        prepare_job(self, job, *args, **kwargs)

    BaseWorker.prepare_job_execution = prepare_job_execution  # type: ignore[method-assign]


def _kill_around_prepare_execution(owner: type, point: str, directory: str) -> None:
    prepare = owner.prepare_execution  # type: ignore[attr-defined]

    def prepare_execution(self: Any, job: Any) -> Any:
        if point == "dequeued" and _first_to_reach(directory, point, job.id):
            _die()
        execution = prepare(self, job)
        if point == "registered" and _first_to_reach(directory, point, job.id):
            _die()
        return execution

    owner.prepare_execution = prepare_execution  # type: ignore[attr-defined]


def install_dequeue_fail(spec: str) -> None:
    import redis
    from rq.job import Job

    point, directory = spec.split(":", 1)
    if point == "fetch":
        from django_rq_pool.worker.dequeue import HeldClaim

        fetch = Job.fetch.__func__  # type: ignore[attr-defined]

        def fetch_failing(cls: type, job_id: str, *args: Any, **kwargs: Any) -> Any:
            if HeldClaim.job_id() == job_id and _first_to_reach(directory, point, job_id):
                raise redis.ConnectionError("injected: connection lost while fetching a claimed job")
            return fetch(cls, job_id, *args, **kwargs)

        Job.fetch = classmethod(fetch_failing)  # type: ignore[method-assign, assignment]
        return
    if point != "register":
        raise ValueError(f"TEST_DEQUEUE_FAIL: unknown point {point!r}")
    from rq.worker import BaseWorker

    from django_rq_pool.compat import WORKER_SHIMS

    for owner in (BaseWorker, *WORKER_SHIMS):
        prepare = owner.prepare_execution  # type: ignore[attr-defined]

        def prepare_failing(self: Any, job: Any, prepare: Callable[..., Any] = prepare) -> Any:
            if _first_to_reach(directory, point, job.id):
                raise redis.ConnectionError("injected: connection lost while registering the job")
            return prepare(self, job)

        owner.prepare_execution = prepare_failing  # type: ignore[attr-defined]


def install_redis_kill(spec: str) -> None:
    import time

    point, pid, directory = spec.split(":", 2)

    def gone() -> bool:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                return stat.read().rsplit(")", 1)[1].split()[0] == "Z"  # its sockets closed as it exited
        except FileNotFoundError:
            return True

    def kill_redis_once() -> None:
        if _first_to_reach(directory, point, "-"):
            os.kill(int(pid), signal.SIGKILL)
            while not gone():
                time.sleep(0.01)

    if point == "slice-end":
        _kill_redis_at_slice_end(kill_redis_once)
    elif point in ("pause", "resume"):
        _kill_redis_around_pause(kill_redis_once, point)
    else:
        raise ValueError(f"TEST_REDIS_KILL: unknown point {point!r}")


def _kill_redis_at_slice_end(kill: Callable[[], None]) -> None:
    from rq.exceptions import DequeueTimeout
    from rq.queue import Queue

    from django_rq_pool.worker.dequeue import ClaimingQueue

    for owner in (Queue, ClaimingQueue):  # a single queue's BLMOVE, a multi-queue list's doorbell wait
        dequeue_any = owner.dequeue_any.__func__  # type: ignore[attr-defined]

        def dequeue_any_killing(
            cls: type, *args: Any, original: Callable[..., Any] = dequeue_any, **kwargs: Any
        ) -> Any:
            try:
                return original(cls, *args, **kwargs)
            except DequeueTimeout:
                kill()
                raise

        owner.dequeue_any = classmethod(dequeue_any_killing)  # type: ignore[method-assign, assignment]


def _kill_redis_around_pause(kill: Callable[[], None], point: str) -> None:
    from django_rq_pool.worker.paused_dequeue import PausedDequeueMixin

    wait_while_paused = PausedDequeueMixin._pool_wait_while_paused

    def wait_killing(self: Any) -> None:
        pausing = self._pool_paused and not self._stop_requested
        if pausing and point == "pause":
            kill()
        wait_while_paused(self)
        if pausing and point == "resume":
            kill()

    PausedDequeueMixin._pool_wait_while_paused = wait_killing  # type: ignore[method-assign]


def break_janitors() -> None:
    from django_rq_pool.helpers import janitor

    def fail_jobs_of_dead_worker(*args: object) -> int:
        raise RuntimeError("injected janitor fault")

    janitor.fail_jobs_of_dead_worker = fail_jobs_of_dead_worker
