"""Signals that reach a freshly forked child before its own dispositions exist (real fork, real signals)."""

from __future__ import annotations

import os
import signal

from django_rq_pool.common.child import MASTER_SIGNALS, enter_child


def child_fate(signum: int, **entry: bool) -> str:
    """Fork as the master does (its signals blocked), send ``signum`` at once, enter the child."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, MASTER_SIGNALS)
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.kill(os.getpid(), signum)  # pending: it arrived between the fork and the child's entry
            enter_child("test", os.getppid(), (), **entry)
            status = 0
        finally:
            os._exit(status)
    signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return "alive" if os.waitstatus_to_exitcode(status) == 0 else f"exit {os.waitstatus_to_exitcode(status)}"


def test_a_janitor_survives_a_ctrl_c_in_its_start_up_window():
    for signum in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
        assert child_fate(signum, ignore_stop=True) == "alive", signal.Signals(signum).name


def test_a_starting_worker_survives_usr1_usr2_and_stop_signals():
    for signum in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGCONT, signal.SIGINT, signal.SIGTERM):
        assert child_fate(signum, remember=True) == "alive", signal.Signals(signum).name


def test_other_children_keep_the_default_dispositions():
    assert child_fate(signal.SIGINT) == "killed by SIGINT"
