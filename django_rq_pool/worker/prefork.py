"""``prefork_job_child``: an idle worker keeps its next job child forked and waiting on a pipe.

rq forks the job child after it dequeues a job, so every job waits for the fork (the worker's page
tables copied) and for the child's start. With this option a worker forks that child as it starts
to wait for a job, after the previous job's cleanup, and hands it the dequeued job over a pipe
instead of forking. The child then runs rq's own ``main_work_horse`` and ``perform_job``.

What a fork after the dequeue would have given the child, it is sent or rebuilds:

* the job: its stored fields, rebuilt as ``Job.fetch`` does without asking Redis again
  (``handed_job.py``), with the Redis version the dequeue noted on it; the queue: rebuilt from its
  key, as rq's dequeue does;
* the execution the worker registered just before: its fields, copied;
* the job's environment (``RQ_WORKER_ID``, ``RQ_JOB_ID``); a log file reopen if a HUP came since.

Before it waits, the child does what rq's job child does first: its own process group, the job
child's signal dispositions, no inherited DB socket; and it opens its own Redis connection. While
it waits it holds nothing else: it dies with the worker (``PR_SET_PDEATHSIG``; the master also
finds it on the lineage page), and a dequeue that ends without a job (a stop, a burst's end,
``max_idle_time``) SIGKILLs and reaps it. If it died meanwhile, the worker reaps it at once (its
SIGCHLD handler waits for that one pid only, never for rq's job child or scheduler; the calls it
interrupts are resumed, PEP 475) and forks the next job child as rq does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Iterable
from types import FrameType
from typing import Any, NoReturn

import redis
from rq.worker import Worker

from django_rq_pool.common.inherited_db import drop_inherited_db_connections, holds_db_connections
from django_rq_pool.common.linux import signal_on_parent_death
from django_rq_pool.common.log_files import reopen_on_signal
from django_rq_pool.common.titles import forking_as
from django_rq_pool.compat import runs_jobs_in_process
from django_rq_pool.worker.handed_job import job_fields, restored_job
from django_rq_pool.worker.job_child import JobChildMixin
from django_rq_pool.worker.waiting_child import WaitingChild, read_hand_over

log = logging.getLogger(__name__)

# The signals the master sends a worker: blocked across the fork, so the worker's handlers never run in the child.
WORKER_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGCONT,
    signal.SIGHUP,
)


def forks_like_rq(worker: Any) -> bool:
    """Whether the worker's job child is rq's plain fork: not in-process, not its own fork (SpawnWorker)."""
    if runs_jobs_in_process(type(worker)):
        return False
    for klass in type(worker).__mro__:
        if "fork_work_horse" in vars(klass) and not klass.__module__.startswith("django_rq_pool."):
            return vars(klass)["fork_work_horse"] is Worker.fork_work_horse
    return False


class PreforkMixin(JobChildMixin):
    """Keeps a job child waiting while the worker waits for a job, and hands it the job."""

    pool_prefork_job_child = False
    _pool_waiting: WaitingChild | None = None
    _pool_logs_reopened = False  # a HUP since the waiting child was forked: it must reopen too

    def work(self, *args: Any, **kwargs: Any) -> bool:
        if self.pool_prefork_job_child and not forks_like_rq(self):
            self.log.warning(
                "Worker %s: prefork_job_child is ignored: %s does not fork its job child as rq's Worker does",
                self.name,
                type(self).__name__,
            )
            self.pool_prefork_job_child = False
        return super().work(*args, **kwargs)

    def _install_signal_handlers(self) -> None:
        super()._install_signal_handlers()
        if self.pool_prefork_job_child:
            signal.signal(signal.SIGHUP, self._pool_reopen_logs)
            signal.signal(signal.SIGCHLD, self._pool_reap_waiting_child)

    def setup_work_horse_signals(self) -> None:
        super().setup_work_horse_signals()
        # A handler makes blocking calls fail with EINTR: the job's C code (libpq, ...) must not see that.
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)

    def _pool_reap_waiting_child(self, signum: int, frame: FrameType | None) -> None:
        """SIGCHLD: reap the waiting child if it died, so that no zombie waits for the next job."""
        waiting = self._pool_waiting
        if waiting is not None and waiting.parent == os.getpid() and not waiting.reaped and waiting.exited():
            self._pool_record_lineage(0)  # its pid may be reused: the master must not kill that

    def _pool_reopen_logs(self, signum: int, frame: FrameType | None) -> None:
        self._pool_logs_reopened = True
        reopen_on_signal(signum, frame)

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> Any:
        if self.pool_prefork_job_child and self._pool_waiting is None:
            self._pool_waiting = self._pool_fork_waiting_child()
            self._pool_waiting.exited()  # one that died before the line above was not the handler's to reap
            self._pool_record_lineage(0)
        try:
            result = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        except BaseException:
            self._pool_end_waiting_child()
            raise
        if result is None:
            self._pool_end_waiting_child()
        return result

    def _pool_record_lineage(self, job_child: int) -> None:
        """While no job child runs, the waiting one is what the master must kill if this worker dies."""
        waiting = self._pool_waiting
        super()._pool_record_lineage(job_child or (waiting.pid if waiting is not None and not waiting.reaped else 0))

    def _pool_fork_horse(self, job: Any, queue: Any) -> None:
        waiting, self._pool_waiting = self._pool_waiting, None
        if waiting is not None:
            if waiting.hand_over(self._pool_hand_over(job, queue)):
                self._horse_pid = waiting.pid
                self.procline(f"Forked {waiting.pid} at {time.time()}")
                return
            self.log.warning("Worker %s: the waiting job child %d is gone; forking one", self.name, waiting.pid)
            waiting.end()
        super()._pool_fork_horse(job, queue)

    def _pool_hand_over(self, job: Any, queue: Any) -> dict[str, Any]:
        execution = self.execution
        fields = {name: value for name, value in vars(execution).items() if name not in ("connection", "_job")}
        return {
            "job_id": job.id,
            "job_fields": job_fields(job),
            "redis_server_version": getattr(job, "redis_server_version", None),
            "queue_key": queue.key,
            "execution": (type(execution), fields),
            "reopen_logs": self._pool_logs_reopened,
        }

    def execute_job(self, job: Any, queue: Any) -> None:
        try:
            super().execute_job(job, queue)
        finally:
            self._pool_end_waiting_child()  # not handed the job: its registration failed

    def teardown(self) -> None:
        self._pool_end_waiting_child()
        super().teardown()

    def _pool_end_waiting_child(self) -> None:
        waiting, self._pool_waiting = self._pool_waiting, None
        if waiting is not None:
            waiting.end()
            self._pool_record_lineage(0)

    def _pool_fork_waiting_child(self) -> WaitingChild:
        read_fd, write_fd = os.pipe()
        self._pool_logs_reopened = False
        holds_db = holds_db_connections()
        worker_pid = os.getpid()
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, WORKER_SIGNALS)
        try:
            with forking_as(f"rq:worker:{self.name}: job child waiting for a job"):
                pid = os.fork()
            if pid == 0:
                self._pool_wait_for_job(read_fd, write_fd, worker_pid, holds_db, mask)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(read_fd)
        return WaitingChild(pid, write_fd)

    def _pool_wait_for_job(
        self, read_fd: int, write_fd: int, worker_pid: int, holds_db: bool, mask: Iterable[int]
    ) -> NoReturn:
        """The waiting child: set up as rq's job child, wait for the job, run it; never returns."""
        status = 1
        try:
            os.close(write_fd)
            os.setpgrp()
            signal_on_parent_death(signal.SIGKILL)
            self.setup_work_horse_signals()
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            if os.getppid() != worker_pid:
                os._exit(0)  # the worker died before the line above
            if self.pool_listening_fd >= 0:
                os.close(self.pool_listening_fd)  # the master's pipe: the worker says it listens, not this child
                self.pool_listening_fd = -1
            if holds_db:
                drop_inherited_db_connections()
            self._pool_child_inherits_db = False
            with contextlib.suppress(redis.RedisError):
                self.connection.ping()  # its own connection (redis-py opens one after a fork), ready for the job
            hand_over = read_hand_over(read_fd)
            if hand_over is None:
                os._exit(0)
            os.close(read_fd)
            signal_on_parent_death(0)  # from now on a job child like any other: the master kills it if need be
            job, queue = self._pool_take_over(hand_over)
            self.main_work_horse(job, queue)
            status = 0
        except BaseException:
            log.exception("Worker %s: the waiting job child failed", self.name)
        finally:
            os._exit(status)

    def _pool_take_over(self, hand_over: dict[str, Any]) -> tuple[Any, Any]:
        """The job, its queue and its execution as the worker holds them, with this process's connection."""
        if hand_over["reopen_logs"]:
            reopen_on_signal(signal.SIGHUP, None)
        job = restored_job(
            self.job_class, hand_over["job_id"], hand_over["job_fields"], self.connection, self.serializer
        )
        job.redis_server_version = hand_over["redis_server_version"]
        queue = self.queue_class.from_queue_key(
            hand_over["queue_key"],
            connection=self.connection,
            job_class=self.job_class,
            serializer=self.serializer,
            death_penalty_class=self.death_penalty_class,
        )
        execution_class, fields = hand_over["execution"]
        execution = execution_class.__new__(execution_class)
        vars(execution).update(fields, connection=self.connection, _job=None)
        self.execution = execution
        os.environ["RQ_WORKER_ID"] = self.name
        os.environ["RQ_JOB_ID"] = job.id
        return job, queue
