"""The worker's job path: forking the job child and the scheduler, failing a killed job, recycling.

Everything here runs around one job: the fork (titled, with the lineage page kept current for the
master), the job's outcome when the pool killed it, and the memory check after it.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import psutil
from rq.worker import SimpleWorker, Worker

from django_rq_pool.common.inherited_db import drop_inherited_db_connections, holds_db_connections
from django_rq_pool.common.job_killed import report_killed_job
from django_rq_pool.common.linux import signal_on_parent_death
from django_rq_pool.common.titles import forking_as, titled
from django_rq_pool.worker.state import PoolWorkerState

JOB_CHILD_DIED = "Work-horse terminated unexpectedly"  # rq's reason for a job child that died


class JobChildMixin(PoolWorkerState):
    """Forks the job child and the scheduler, fails killed jobs with a reason, retires on memory."""

    def main_work_horse(self, job: Any, queue: Any) -> None:
        self._pool_in_job_child = True
        # A worker killed before it recorded this child on the lineage page leaves it unknown to the
        # master: alive, it would run the job while the janitor, seeing it unstarted, requeues it.
        if self._pool_worker_pid:  # forked by this worker (fork_work_horse)
            signal_on_parent_death(signal.SIGKILL)
            if os.getppid() != self._pool_worker_pid:
                os.kill(os.getpid(), signal.SIGKILL)  # the worker died before that took effect
        if self._pool_child_inherits_db:  # the worker's hooks or jobs opened one before this fork
            drop_inherited_db_connections()
        super().main_work_horse(job, queue)

    def perform_job(self, job: Any, queue: Any) -> bool:
        """In a SimpleWorker, mark the span in which the job's own code runs: the only place a kill may raise."""
        if not isinstance(self, SimpleWorker):
            return super().perform_job(job, queue)
        perform = job.perform

        def perform_killable() -> Any:
            self._pool_in_job_code = True
            try:
                return perform()
            finally:
                self._pool_in_job_code = False

        job.perform = perform_killable
        try:
            return super().perform_job(job, queue)
        finally:
            del job.perform

    def fork_work_horse(self, job: Any, queue: Any) -> None:
        self._pool_child_inherits_db = holds_db_connections()
        self._pool_worker_pid = os.getpid()
        with forking_as(f"rq:worker:{self.name}: job child of {job.id} starting"):
            if getattr(super().fork_work_horse, "__func__", None) is Worker.fork_work_horse:
                self._pool_fork_horse(job, queue)
            else:
                super().fork_work_horse(job, queue)  # the worker class has its own
        if self.pool_lineage is not None:
            self._pool_record_lineage(self.horse_pid)
        if self._pool_kill_pending and self.horse_pid:
            self._pool_kill_pending = False
            self.kill_horse(signal.SIGKILL)

    def _pool_fork_horse(self, job: Any, queue: Any) -> None:
        """rq's fork_work_horse, but RQ_WORKER_ID and RQ_JOB_ID are set in the job child only.

        rq sets them in the worker as well, where nothing reads them. There, glibc's setenv keeps
        every distinct value forever (about 100 bytes per job), each in a free chunk inherited
        from the master, so a long-lived worker kept dirtying shared pages at one every other job.
        """
        child_pid = os.fork()
        if child_pid == 0:
            os.environ["RQ_WORKER_ID"] = self.name
            os.environ["RQ_JOB_ID"] = job.id
            os.setpgrp()
            self.main_work_horse(job, queue)
            os._exit(0)
        self._horse_pid = child_pid
        self.procline(f"Forked {child_pid} at {time.time()}")

    def _start_scheduler(self, *args: Any, **kwargs: Any) -> None:
        with forking_as(self._pool_scheduler_title()):
            super()._start_scheduler(*args, **kwargs)

    def run_maintenance_tasks(self) -> None:
        with forking_as(self._pool_scheduler_title()):  # rq restarts a scheduler that died here
            super().run_maintenance_tasks()

    def _pool_scheduler_title(self) -> str:
        """rq's scheduler process never titles itself: it keeps this title for life."""
        queues = ",".join(self.queue_names())
        return titled("scheduler", f"[{queues}] rq scheduler of worker {self.name} (pid {os.getpid()})")

    def handle_job_failure(self, job: Any, queue: Any, started_job_registry: Any = None, exc_string: str = "") -> None:
        """Fail the job with the pool's reason; if it was killed, tell the application (job_killed.py).

        Here, outside the job child, a forking worker fails a job only when its job child died
        (killed by the pool, or by a signal or the OOM killer): rq ran no ``on_failure`` for it.
        A SimpleWorker's killed job raised JobKilledByPool in-process, so rq already ran it.
        """
        reason = self._pool_kill_reason
        self._pool_kill_reason = None
        if reason:
            exc_string = f"{reason}\n{exc_string}"
        super().handle_job_failure(job, queue, started_job_registry=started_job_registry, exc_string=exc_string)
        if self._pool_in_job_child:
            return
        in_process = isinstance(self, SimpleWorker)
        if reason or (not in_process and exc_string.startswith(JOB_CHILD_DIED)):
            report_killed_job(job, reason or exc_string.strip().rstrip(";"), run_on_failure=not in_process)

    def execute_job(self, job: Any, queue: Any) -> None:
        super().execute_job(job, queue)
        self._pool_job_in_hand = None  # executed: finished or failed, whatever became of it
        self._pool_record_lineage(0)
        self._pool_kill_pending = False  # a USR1 that came after the job child was reaped is void
        if self.pool_memory_limit:
            used = psutil.Process().memory_full_info().uss
            if used > self.pool_memory_limit:
                self.log.warning(
                    "Worker %s: unique memory %d MiB is over the limit of %d MiB; retiring",
                    self.name,
                    used // 2**20,
                    self.pool_memory_limit // 2**20,
                )
                self._stop_requested = True
