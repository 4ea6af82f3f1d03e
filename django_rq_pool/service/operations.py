"""How the pool runs as a service: log files, pidfile, daemon mode, hot swap and systemd.

:class:`Service` wraps the arbiter's run without changing it: it opens the log file, checks and
writes the pidfile (a hot swap under its swap lock), detaches, and builds the arbiter callbacks
that report readiness (to the shell that started a daemon, to the old pool of a hot swap, to
systemd).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from django_rq_pool.common.exit_codes import EXIT_PIDFILE
from django_rq_pool.common.log_files import DAEMON_DEFAULT, LogFiles, activate, redirect_std_streams
from django_rq_pool.master.readiness import ListeningGate
from django_rq_pool.service.daemon import LastError, Readiness, daemonize
from django_rq_pool.service.hotswap import HotSwap
from django_rq_pool.service.pidfile import PidFile, PidFileError, live_owner
from django_rq_pool.service.swap_lock import SwapInProgress, SwapLock
from django_rq_pool.service.systemd import Notifier

log = logging.getLogger(__name__)


class OperationsError(Exception):
    """A bad combination of operations options; exit status carried along."""

    def __init__(self, message: str, status: int = 2):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Operations:
    """Operations options from the command line and settings (None: not given)."""

    log_file: str | None = None
    pidfile: str | None = None
    daemon: bool = False
    hot_swap: bool = False
    ready_timeout: float = 60.0


class Service:
    """One run of the pool as a service; methods are called by the runner in order."""

    def __init__(self, ops: Operations):
        self.ops = ops
        pattern = ops.log_file or (DAEMON_DEFAULT if ops.daemon else None)
        try:
            self.log_files = LogFiles(pattern) if pattern else None
        except ValueError as exc:
            raise OperationsError(str(exc)) from None
        if ops.hot_swap and not ops.pidfile:
            raise OperationsError("--hot-swap needs --pidfile (or settings.RQ_POOL_PIDFILE) to find the old pool")
        self.pidfile = PidFile(ops.pidfile) if ops.pidfile else None
        self.swap_lock = SwapLock(self.pidfile.path) if self.pidfile is not None and ops.hot_swap else None
        self.readiness: Readiness | None = None
        self.last_error = LastError()
        self.old_pid: int | None = None
        if self.pidfile is not None:
            self.old_pid = live_owner(self.pidfile.path)
            if self.old_pid is not None and not ops.hot_swap:
                raise OperationsError(
                    f"pidfile {self.pidfile.path} holds pid {self.old_pid}, which is alive: "
                    "is a pool already running? (use --hot-swap to replace it)",
                    EXIT_PIDFILE,
                )

    def log_handler(self) -> logging.Handler | None:
        """The master's log file handler; OperationsError (exit 2) if the file cannot be created."""
        if self.log_files is None:
            return None
        try:
            return activate(self.log_files)
        except OSError as exc:
            where = f" {exc.filename}:" if exc.filename else ""
            reason = exc.strerror or exc
            raise OperationsError(f"cannot open --log-file {self.log_files.pattern!r}:{where} {reason}") from None

    def start(self) -> None:
        """Detach if asked, then claim the pidfile (in the process that will be the master)."""
        logging.getLogger("django_rq_pool").addHandler(self.last_error)
        if self.ops.daemon:
            assert self.log_files is not None and self.log_files.handler is not None
            self.readiness = daemonize(self.log_files.handler.baseFilename, self.ops.ready_timeout)
            self.log_files.reopen_master()
            redirect_std_streams()
        if self.pidfile is None:
            return
        if self.swap_lock is not None:
            self._lock_swap(self.swap_lock)
            self.old_pid = live_owner(self.pidfile.path)  # again, under the lock: a swap may have ended since
        if self.old_pid is not None:
            log.info("hot swap: pool %d runs now; it gets QUIT once every new worker listens", self.old_pid)
            return
        if self.ops.hot_swap:
            log.info("hot swap: no running pool owns %s (stale or absent); nothing to replace", self.pidfile.path)
        try:
            self.pidfile.write()
        except PidFileError as exc:
            raise OperationsError(str(exc), EXIT_PIDFILE) from None
        finally:
            if self.swap_lock is not None:
                self.swap_lock.release()  # nothing to take over: the pidfile's own claim decided
        log.info("pidfile %s written (pid %d)", self.pidfile.path, self.pidfile.written_pid)

    @staticmethod
    def _lock_swap(lock: SwapLock) -> None:
        """Be the only hot swap of this pidfile, before anything is forked; exit 4 if another one is."""
        try:
            lock.acquire()
        except SwapInProgress as exc:
            raise OperationsError(str(exc), EXIT_PIDFILE) from None
        except (OSError, PidFileError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise OperationsError(f"cannot lock {lock.path} for the hot swap: {reason}", EXIT_PIDFILE) from None

    def callbacks(self) -> dict[str, Any]:
        """The arbiter's on_ready / on_status / on_tick, and how often it must tick."""
        gate = ListeningGate()
        ticks: list[Callable[[Any], None]] = [gate.on_tick]
        callbacks: dict[str, Any] = {"on_ready": gate.on_ready}
        if self.readiness is not None:
            readiness = self.readiness
            gate.listeners.append(lambda arbiter: readiness.ready())
        if self.old_pid is not None and self.pidfile is not None:
            gate.listeners.append(HotSwap(self.pidfile, self.old_pid, self.swap_lock).take_over)
        notifier = Notifier.from_environment()
        if notifier is not None:
            gate.listeners.append(lambda arbiter: notifier.on_status(arbiter, "READY=1"))
            callbacks["on_status"] = lambda arbiter, message: (
                None if message == "READY=1" else notifier.on_status(arbiter, message)
            )
            ticks.append(notifier.on_tick)
            if notifier.watchdog_interval is not None:
                callbacks["tick_every"] = notifier.watchdog_interval

        def on_tick(arbiter: Any) -> None:
            for tick in ticks:
                tick(arbiter)

        callbacks["on_tick"] = on_tick
        return callbacks

    def finish(self, status: int, reason: str = "") -> None:
        """At exit: tell a waiting shell why we stopped; give the pidfile up if it is still ours."""
        if self.readiness is not None:
            why = reason or self.last_error.message or f"the master exited with status {status}"
            self.readiness.failed(status, why)
        if self.swap_lock is not None:
            self.swap_lock.release()
        if self.pidfile is not None:
            self.pidfile.release()


def with_settings(ops: Operations) -> Operations:
    """Fill what the command line left unset from ``settings.RQ_POOL_LOG_FILE`` / ``RQ_POOL_PIDFILE``."""
    from django.conf import settings

    return replace(
        ops,
        log_file=ops.log_file or getattr(settings, "RQ_POOL_LOG_FILE", None),
        pidfile=ops.pidfile or getattr(settings, "RQ_POOL_PIDFILE", None),
    )
