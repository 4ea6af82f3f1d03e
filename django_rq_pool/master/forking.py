"""How the master forks, signals and describes its children.

Every fork freezes the GC first, so children share the master's objects (collector.py), and
blocks the master's signals across the fork, so a child never runs the master's handlers.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
from collections.abc import Callable

from setproctitle import setproctitle

from django_rq_pool.common.child import MASTER_SIGNALS, enter_child

log = logging.getLogger(__name__)


class Forker:
    """Forks workers and helper children of one master."""

    def __init__(self, master_pid: int, master_fds: Callable[[], tuple[int, ...]]):
        self.master_pid = master_pid
        self.master_fds = master_fds  # the fds a child must close: asked at each fork
        self._frozen = False  # the first fork froze the image loaded before it

    def fork(self) -> int:
        """fork(), freezing the GC first so children share the master's objects; -1 on failure."""
        if self._frozen:  # not gc.get_freeze_count(): it walks every frozen object
            gc.collect()  # only what is younger than the last fork: don't freeze garbage forever
        gc.freeze()
        self._frozen = True
        # Block signals across fork: a child must never run the master's handlers (a QUIT sent to
        # a worker just forked would land in the child's copy of the signal queue and be lost).
        # enter_child() unblocks them in the child once its own dispositions are set.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, MASTER_SIGNALS)
        try:
            pid = os.fork()
        except OSError as exc:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            log.error("fork failed: %s", exc)
            return -1
        if pid != 0:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        return pid

    def fork_helper(
        self, label: str, title: str, body: Callable[[], int], ignore_stop: bool = False, outlive: bool = False
    ) -> int:
        """Fork a short-lived child that runs ``body()`` and exits with its status; -1 if fork failed.

        ``ignore_stop``: the child ignores the stop signals from its entry, so that what stops the
        pool does not cut it short. ``outlive``: run ``body()`` even if the master has exited
        meanwhile (a janitor forked as the master exits); otherwise such a child exits at once.
        """
        pid = self.fork()
        if pid != 0:
            return pid
        code = 1
        try:
            if enter_child(label, self.master_pid, self.master_fds(), ignore_stop=ignore_stop) or outlive:
                setproctitle(title)
                code = body()
        finally:
            os._exit(code)


def send(pid: int, signum: int) -> None:
    """kill(), tolerating a child that is already gone."""
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        log.debug("worker %d already gone (%s not sent)", pid, signal.Signals(signum).name)
    except PermissionError:
        log.error("cannot send %s to worker %d: permission denied", signal.Signals(signum).name, pid)


def describe_status(status: int) -> str:
    """Human wording of a waitpid status."""
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.WEXITSTATUS(status)}"


def is_abnormal(status: int) -> bool:
    return os.WIFSIGNALED(status) or os.WEXITSTATUS(status) != 0
