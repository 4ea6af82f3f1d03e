"""What every process forked by the master does first, before its own work."""

from __future__ import annotations

import gc
import os
import random
import signal

from .linux import signal_on_parent_death
from .logs import set_process_label

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


def enter_child(label: str, master_pid: int, wakeup_fds: tuple[int, ...]) -> bool:
    """Drop the master's signal handling and wake-up pipe; False if the master is already gone."""
    for signum in MASTER_SIGNALS:
        # HUP stays ignored until a worker installs its log-reopening handler: the master forwards it.
        signal.signal(signum, signal.SIG_IGN if signum == signal.SIGHUP else signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    for fd in wakeup_fds:
        os.close(fd)
    set_process_label(label)
    gc.enable()
    random.seed()
    signal_on_parent_death(signal.SIGQUIT)
    return os.getppid() == master_pid
