"""What every process forked by the master does first, before its own work, and how a helper ends."""

from __future__ import annotations

import gc
import logging
import os
import random
import signal
from collections.abc import Callable

from django_rq_pool.common.linux import signal_on_parent_death
from django_rq_pool.common.logs import set_process_label

MASTER_SIGNALS = (
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGWINCH,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGCONT,
    signal.SIGCHLD,
    signal.SIGTTIN,
    signal.SIGTTOU,
)


STOP_SIGNALS = (signal.SIGQUIT, signal.SIGTERM, signal.SIGINT)
# Signals a worker remembers while it starts (its handlers arrive only in rq's work()): a default
# disposition would kill it (USR1, USR2, the stop signals) or forget the request (CONT).
REMEMBERED_SIGNALS = (*STOP_SIGNALS, signal.SIGUSR1, signal.SIGUSR2, signal.SIGCONT)
MAX_REMEMBERED = 64
_early: list[int] = []
log = logging.getLogger(__name__)


def _remember(signum: int, frame: object) -> None:
    if len(_early) < MAX_REMEMBERED:
        _early.append(signum)


def early_stop() -> int | None:
    """A stop signal that reached this worker before its own handlers were installed."""
    return next((signum for signum in _early if signum in STOP_SIGNALS), None)


def early_requests() -> list[int]:
    """USR1, USR2 and CONT that reached this worker while it started, oldest first."""
    return [signum for signum in _early if signum not in STOP_SIGNALS]


def enter_child(
    label: str, master_pid: int, master_fds: tuple[int, ...], remember: bool = False, ignore_stop: bool = False
) -> bool:
    """Drop the master's signal handling and pipes (``master_fds``); False if the master is already gone.

    The master forks with its signals blocked (so the child never runs the master's handlers);
    they are unblocked here once the child's own dispositions are in place. With ``remember``
    (workers), a stop, USR1, USR2 or CONT signal that arrives before the worker's handlers exist
    is remembered (and applied once they do) instead of killing the half-started worker or being lost.
    With ``ignore_stop`` (janitors, which finish their accounting whatever stops the pool), the
    stop signals are ignored from the start: a Ctrl-C pending since the fork must not kill them.
    """
    for signum in MASTER_SIGNALS:
        # HUP stays ignored until a worker installs its log-reopening handler: the master forwards it.
        if signum == signal.SIGHUP or (ignore_stop and signum in STOP_SIGNALS):
            signal.signal(signum, signal.SIG_IGN)
        elif remember and signum in REMEMBERED_SIGNALS:
            signal.signal(signum, _remember)
        else:
            signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, MASTER_SIGNALS)
    signal.set_wakeup_fd(-1)
    for fd in master_fds:
        os.close(fd)
    set_process_label(label)
    gc.enable()
    random.seed()
    signal_on_parent_death(signal.SIGQUIT)
    return os.getppid() == master_pid


def run_logged(what: str, body: Callable[..., int], *args: object) -> int:
    """Run a helper child's ``body``; an exception is logged with its traceback and gives status 1.

    A child ends with ``os._exit()``, which prints nothing: without this, the pool's log would
    say only that ``what`` exited with status 1, not why.
    """
    try:
        return body(*args)
    except Exception:
        log.exception("%s failed", what)
        return 1
