"""The worker's signal handlers: resque's meanings on top of rq's loop.

Every handler only sets a flag, kills the job child, or ends a blocking dequeue; it never raises
into a dequeue, which could lose a job Redis already handed over (see unblock.py).
"""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from types import FrameType

from rq.utils import now
from rq.worker import SimpleWorker, WorkerStatus

from django_rq_pool.common.child import early_requests, early_stop
from django_rq_pool.common.job_killed import JobKilledByPool
from django_rq_pool.common.log_files import reopen_on_signal
from django_rq_pool.worker.state import PoolWorkerState
from django_rq_pool.worker.unblock import interrupt_blocking_dequeue

THREAD_BLOCKED_SIGNALS = signal.valid_signals() - {
    signal.SIGSEGV,
    signal.SIGBUS,
    signal.SIGFPE,
    signal.SIGILL,
    signal.SIGTRAP,
    signal.SIGABRT,
    signal.SIGSYS,
}  # synchronous signals stay with the thread that causes them


class PoolSignalsMixin(PoolWorkerState):
    """QUIT, TERM, INT, USR1, USR2, CONT and HUP in the worker, and what its job child ignores."""

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
