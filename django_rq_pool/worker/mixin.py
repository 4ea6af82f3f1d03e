"""What runs in each forked worker process: rq's own loop, taught the pool's signals.

The master signals workers with resque's meanings, which rq lacks (rq dies outright on
USR1, USR2 and HUP). So the worker class a queue list asks for is subclassed at fork time
with :class:`PoolWorkerMixin`, which installs these handlers:

* QUIT: warm stop (finish the current job, then exit); also sent by the kernel if the master dies.
* TERM: as QUIT under a graceful TERM mode, else kill the current job (it ends failed) and exit.
* INT: rq's behaviour (warm stop; a second one more than 1 s later is a cold stop).
* USR1: kill the current job now; it ends failed with the reason. USR2: pause. CONT: resume.
* HUP: reopen the log file (the master forwards its HUP so logrotate works).
"""

from __future__ import annotations

import logging
import math
import os
import random
import signal
import sys
import time
import traceback
from datetime import timedelta
from types import FrameType
from typing import Any, NoReturn

import psutil
import redis
from rq.exceptions import StopRequested
from rq.utils import now
from rq.worker import SimpleWorker, Worker, WorkerStatus

from django_rq_pool.common.child import early_requests, early_stop, enter_child
from django_rq_pool.common.exit_codes import WORKER_BOOT_FAILED, WORKER_HOOK_FAILED
from django_rq_pool.common.heartbeat_rule import worker_heartbeat_kwargs
from django_rq_pool.common.inherited_db import drop_inherited_db_connections, holds_db_connections
from django_rq_pool.common.job_killed import JobKilledByPool, report_killed_job
from django_rq_pool.common.lineage import Lineage
from django_rq_pool.common.listening_pipe import announce
from django_rq_pool.common.log_files import enter_worker as use_worker_log_file
from django_rq_pool.common.log_files import reopen_on_signal
from django_rq_pool.common.titles import forking_as, forks_become, set_title, titled
from django_rq_pool.compat import WORKER_SHIMS
from django_rq_pool.config.options import PoolOptions
from django_rq_pool.hooks import WorkerContext, run_hooks
from django_rq_pool.worker.base import WorkerBase
from django_rq_pool.worker.dequeue import ClaimingWorkerMixin
from django_rq_pool.worker.unblock import interrupt_blocking_dequeue, is_unblock_error

log = logging.getLogger(__name__)

STOP_CHECK_SECONDS = 5
PAUSE_POLL_SECONDS = 0.05
JOB_CHILD_DIED = "Work-horse terminated unexpectedly"  # rq's reason for a job child that died
THREAD_BLOCKED_SIGNALS = signal.valid_signals() - {
    signal.SIGSEGV,
    signal.SIGBUS,
    signal.SIGFPE,
    signal.SIGILL,
    signal.SIGTRAP,
    signal.SIGABRT,
    signal.SIGSYS,
}  # synchronous signals stay with the thread that causes them


class PoolWorkerMixin(WorkerBase):
    """Signal handling, pausing and memory recycling for any rq worker class."""

    pool_term_graceful = False
    pool_memory_limit: int | None = None
    _pool_paused = False
    _pool_kill_reason: str | None = None
    _pool_kill_pending = False  # USR1 while busy but between job-child forks
    _pool_in_job_code = False  # SimpleWorker: the job's own function is running in this process
    _pool_dequeueing = False  # inside dequeue_job_and_maintain_ttl (read by the unblock thread)
    pool_listening_fd = -1  # the master's pipe, until this worker says it listens (readiness.py)
    _pool_in_job_child = False
    pool_lineage: Lineage | None = None  # the page where the master finds our job child and scheduler
    _pool_child_inherits_db = True  # set before each job child's fork: the worker has a DB socket open

    def _install_signal_handlers(self) -> None:
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGQUIT, self._pool_warm_stop)
        signal.signal(signal.SIGTERM, self._pool_warm_stop if self.pool_term_graceful else self._pool_stop_now)
        signal.signal(signal.SIGUSR1, self._pool_kill_job)
        signal.signal(signal.SIGUSR2, self._pool_pause)
        signal.signal(signal.SIGCONT, self._pool_resume)
        signal.signal(signal.SIGHUP, reopen_on_signal)
        self._pool_apply_early_signals()

    def _pool_apply_early_signals(self) -> None:
        """Apply what the master sent while this worker started, now that its handlers exist."""
        handlers = {
            signal.SIGUSR1: self._pool_kill_job,
            signal.SIGUSR2: self._pool_pause,
            signal.SIGCONT: self._pool_resume,
        }
        for signum in early_requests():
            self.log.info("Worker %s: %s arrived while starting: applied now", self.name, signal.Signals(signum).name)
            handlers[signal.Signals(signum)](signum, None)
        stop = early_stop()
        if stop is not None:
            self.log.info("Worker %s: %s arrived while starting: stopping", self.name, signal.Signals(stop).name)
            self._stop_requested = True

    def subscribe(self) -> None:
        """Start rq's pub/sub thread with every asynchronous signal blocked in it.

        A signal sent to the process goes to any thread that does not block it. Delivered to
        the pub/sub thread, it would leave the main thread asleep in ``wait4()`` or a socket
        read, so its Python handler would not run until that call returned (a lost USR1, a
        QUIT that waits for the end of the job). The thread inherits the mask set here.
        """
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, THREAD_BLOCKED_SIGNALS)
        try:
            super().subscribe()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def setup_work_horse_signals(self) -> None:
        super().setup_work_horse_signals()
        for signum in (signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGCONT):
            signal.signal(signum, signal.SIG_DFL if signum == signal.SIGCONT else signal.SIG_IGN)
        if self.pool_term_graceful:
            # A platform that TERMs every process (Heroku) must not cut a job short in graceful mode.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def main_work_horse(self, job: Any, queue: Any) -> None:
        self._pool_in_job_child = True
        if self._pool_child_inherits_db:  # the worker's hooks or jobs opened one before this fork
            drop_inherited_db_connections()
        super().main_work_horse(job, queue)

    def _pool_warm_stop(self, signum: int, frame: FrameType | None) -> None:
        if self._stop_requested or self._shutdown_requested_date is not None:
            return
        self.log.info("Worker %s: %s: warm stop", self.name, signal.Signals(signum).name)
        self._shutdown_requested_date = now()
        self._pool_paused = False
        if self.get_state() == WorkerStatus.BUSY:
            self._shutdown()  # rq: finish the job, then stop
            return
        # Not rq's raise StopRequested: it would lose a job the dequeue just received (see unblock.py).
        if self.scheduler:
            self.stop_scheduler()
        self._stop_requested = True
        interrupt_blocking_dequeue(self, lambda: self._pool_dequeueing)

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        """INT: rq's warm stop, without rq's raise into the dequeue (it could drop a claimed job).

        As in rq, a second INT or a TERM afterwards is a cold stop.
        """
        signal.signal(signal.SIGINT, self.request_force_stop)
        signal.signal(signal.SIGTERM, self.request_force_stop)
        self._pool_warm_stop(signum, frame)

    def request_force_stop(self, signum: int, frame: FrameType | None) -> None:
        """rq's cold stop (a second INT, or TERM after INT) exits leaving the job STARTED: fail it first."""
        if self._shutdown_requested_date and now() - self._shutdown_requested_date < timedelta(seconds=1):
            return  # the same Ctrl-C seen twice (from the terminal and from the master)
        self.log.warning("Worker %s: %s during a warm stop: cold stop", self.name, signal.Signals(signum).name)
        self._stop_requested = True
        self._pool_kill_job(signum, frame)

    def _pool_stop_now(self, signum: int, frame: FrameType | None) -> None:
        """Stop first, then kill: in a SimpleWorker the kill raises into the job and returns no more."""
        self._pool_warm_stop(signum, frame)
        self._pool_kill_job(signum, frame)

    def _pool_kill_job(self, signum: int, frame: FrameType | None) -> None:
        if self.get_state() != WorkerStatus.BUSY:
            return
        name = signal.Signals(signum).name
        self._pool_kill_reason = f"killed by rqpool ({name} to worker {self.name}, pid {os.getpid()})"
        self.log.warning("Worker %s: %s: killing the current job", self.name, name)
        if self.horse_pid:
            self.kill_horse(signal.SIGKILL)
        elif isinstance(self, SimpleWorker):
            if not self._pool_in_job_code:
                # rq is recording the outcome (finished, or failed): raising there would leave the job
                # both finished and failed, or fail a job whose function already returned.
                self._pool_kill_reason = None
                self.log.info("Worker %s: %s: the job's function has returned; nothing to kill", self.name, name)
                return
            raise JobKilledByPool(self._pool_kill_reason)
        else:
            # Busy but the job child is not forked yet: raising here would abort the worker itself
            # with the job STARTED, so kill the child as soon as it exists.
            self._pool_kill_pending = True

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

    def _pool_record_lineage(self, job_child: int) -> None:
        """Keep the master's page current: if this worker is killed, the master kills these."""
        if self.pool_lineage is not None:
            process = getattr(self.scheduler, "_process", None)
            self.pool_lineage.record(job_child, getattr(process, "pid", None) or 0)

    def fork_work_horse(self, job: Any, queue: Any) -> None:
        self._pool_child_inherits_db = holds_db_connections()
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

    def _pool_pause(self, signum: int, frame: FrameType | None) -> None:
        """Set a flag, and end an idle worker's blocking dequeue so that it reports the pause at once.

        Never raise here: that could abort a dequeue after Redis handed over a job (see unblock.py).
        """
        if not self._pool_paused:
            self.log.info("Worker %s: USR2: paused, finishing any current job; CONT resumes", self.name)
        self._pool_paused = True
        if self.get_state() != WorkerStatus.BUSY:
            interrupt_blocking_dequeue(self, self._pool_pause_unnoticed)

    def _pool_pause_unnoticed(self) -> bool:
        """True while a pause still waits for the blocking dequeue to end (read by the unblock thread)."""
        return (
            self._pool_dequeueing
            and self._pool_paused
            and not self._stop_requested
            and self.get_state() != WorkerStatus.SUSPENDED
        )

    def _pool_resume(self, signum: int, frame: FrameType | None) -> None:
        if self._pool_paused:
            self.log.info("Worker %s: CONT: resumed", self.name)
        self._pool_paused = False

    def _pool_wait_while_paused(self) -> None:
        """Report SUSPENDED while paused; notice CONT within PAUSE_POLL_SECONDS, heartbeat every second."""
        if not self._pool_paused or self._stop_requested:
            return
        self.set_state(WorkerStatus.SUSPENDED)
        self.procline("Paused (USR2), CONT resumes")
        last_beat = 0.0
        while self._pool_paused and not self._stop_requested:
            if time.monotonic() - last_beat >= 1:
                self.heartbeat()
                last_beat = time.monotonic()
            time.sleep(PAUSE_POLL_SECONDS)

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> Any:
        """rq's dequeue, marked: a warm stop's CLIENT UNBLOCK may only end a blocking call made here."""
        self._pool_dequeueing = True
        try:
            return self._pool_dequeue(timeout, max_idle_time)
        finally:
            self._pool_dequeueing = False

    def _pool_dequeue(self, timeout: int | None, max_idle_time: int | None) -> Any:
        """Wait while paused; a job that arrives during a pause goes back to the head of its queue.

        A blocking wait lasts at most STOP_CHECK_SECONDS before the stop flag is checked again: a
        warm stop that lands just before the blocking command reaches Redis finds nothing for
        CLIENT UNBLOCK to end, and would otherwise wait out rq's whole dequeue timeout.
        """
        self._pool_record_lineage(0)  # the scheduler may have started (or restarted) since the last job
        if self.pool_listening_fd >= 0:
            announce(self.pool_listening_fd)  # registered, about to dequeue for the first time
            self.pool_listening_fd = -1
        idle_since = time.monotonic()
        while True:
            self._pool_wait_while_paused()
            if self._stop_requested:
                raise StopRequested
            slice_limit = max_idle_time
            if timeout is not None:
                left = STOP_CHECK_SECONDS if max_idle_time is None else max_idle_time - (time.monotonic() - idle_since)
                slice_limit = max(1, math.ceil(min(left, STOP_CHECK_SECONDS)))
            try:
                result = super().dequeue_job_and_maintain_ttl(timeout, slice_limit)
            except redis.ResponseError as exc:
                if not is_unblock_error(exc):
                    raise
                if self._stop_requested:
                    raise StopRequested from None  # the warm stop ended the wait; nothing was dequeued
                continue  # a pause ended the wait (nothing was dequeued): report it, or wait again
            if result is None:
                if timeout is None or (max_idle_time is not None and time.monotonic() - idle_since >= max_idle_time):
                    return None  # burst: the queues are empty; or idle for max_idle_time
                continue  # only a slice ended: check the stop flag, wait again
            if not self._pool_paused:
                return result
            job, queue = result
            with self.connection.pipeline() as pipe:
                pipe.lrem(queue.intermediate_queue_key, 1, job.id)
                pipe.lpush(queue.key, job.id)
                pipe.execute()
            self.log.info("Worker %s: paused; job %s put back at the head of %s", self.name, job.id, queue.name)

    def execute_job(self, job: Any, queue: Any) -> None:
        super().execute_job(job, queue)
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


def build_worker(context: WorkerContext, options: PoolOptions) -> Any:
    """Build the rq worker as django-rq does, with the pool's signal handling and dequeue mixed in."""
    import django_rq
    from django_rq.workers import get_worker_class

    group_options = context.group.options
    base = get_worker_class(group_options.worker_class)
    worker_class = type(
        f"Pool{base.__name__}",
        (PoolWorkerMixin, ClaimingWorkerMixin, *WORKER_SHIMS, base),
        {"pool_term_graceful": options.term_graceful, "pool_memory_limit": group_options.memory_limit},
    )
    return django_rq.get_worker(
        *context.group.queues,
        job_class=group_options.job_class,
        queue_class=group_options.queue_class,
        worker_class=worker_class,
        name=context.name,
        **worker_heartbeat_kwargs(options.stuck_timeout),
    )


def _max_jobs(limit: int | None) -> int | None:
    """Spread retirements: each worker takes up to 10% more jobs than the limit."""
    return None if limit is None else limit + random.randint(0, limit // 10)


def run_worker(
    context: WorkerContext,
    options: PoolOptions,
    master_fds: tuple[int, ...],
    listening_fd: int,
    start_paused: bool = False,
    lineage: Lineage | None = None,
) -> NoReturn:
    """Entry point in the forked child; never returns into the master's stack.

    ``start_paused``: the pool is paused (USR2), so this worker takes no job until CONT.
    ``lineage``: the page where it keeps the pids of its job child and scheduler for the master.
    """
    status = 0
    try:
        if not enter_child(context.group.name, context.master_pid, master_fds, remember=True):
            log.warning("master %d is gone before the worker started; exiting", context.master_pid)
            os._exit(0)
        set_title("worker", f"starting [{context.group.name}] #{context.index} as {context.name}")
        forks_become(titled("worker-child", f"forked by worker {context.name} (pid {os.getpid()})"))
        use_worker_log_file(context.group.name, context.index)
        drop_inherited_db_connections()
        worker = build_worker(context, options)
        worker.pool_listening_fd = listening_fd
        worker.pool_lineage = lineage
        try:
            run_hooks("after_prefork", worker, context)
        except Exception:
            log.error("after_prefork hook failed in worker %d:\n%s", os.getpid(), traceback.format_exc())
            os._exit(WORKER_HOOK_FAILED)
        if start_paused:
            worker.log.info("Worker %s: the pool is paused: taking no job until CONT", worker.name)
            worker._pool_paused = True
        group_options = context.group.options
        worker.work(
            burst=options.burst,
            logging_level=logging.getLevelName(options.logging_level),
            max_jobs=_max_jobs(group_options.max_jobs),
            max_idle_time=group_options.max_idle_time,
            with_scheduler=group_options.with_scheduler,
            dequeue_strategy=group_options.dequeue_strategy,
        )
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        log.error("worker %d failed:\n%s", os.getpid(), traceback.format_exc())
        status = WORKER_BOOT_FAILED
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
