"""Telling the application about a job the pool killed: rq's ``on_failure`` and ``job_killed`` hooks.

rq runs a job's ``on_failure`` callback only when the job raises inside its job child. When the
pool ends a job as failed because it killed the job child or the worker (USR1, a TERM in the
immediate mode, a stuck worker, a worker or job child killed by ``kill -9`` or the kernel's OOM
killer), no code of the application ever runs, so its own records of the job (a "Job" row saying
"running") stay as they were. Once rq's record says FAILED, this runs the job's ``on_failure``
callback with a :class:`JobKilledByPool` carrying the reason, then every ``job_killed`` hook with
``(job, reason)``.

Callers are the worker (a job child it lost) and the janitor (a dead worker's jobs); never the
master. They run in a child forked for the purpose, with Django set up (inherited) and a deadline
(``settings.RQ_POOL_JOB_KILLED_TIMEOUT``, default 30 s), after which the child is SIGKILLed. A
callback or hook that raises is logged; the others still run, and nothing else changes.
"""

from __future__ import annotations

import logging
import os
import signal
import time
import traceback
from typing import Any

from django_rq_pool.common.child import run_logged
from django_rq_pool.common.inherited_db import drop_inherited_db_connections
from django_rq_pool.common.linux import signal_on_parent_death
from django_rq_pool.common.titles import set_title
from django_rq_pool.hooks import hooks

log = logging.getLogger(__name__)

TIMEOUT_SETTING = "RQ_POOL_JOB_KILLED_TIMEOUT"
DEFAULT_TIMEOUT = 30.0
IGNORED_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
POLL = 0.02


class JobKilledByPool(Exception):
    """The exception a killed job's ``on_failure`` callback receives; ``reason`` says which kill."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def timeout_seconds() -> float:
    from django.conf import settings

    value = getattr(settings, TIMEOUT_SETTING, DEFAULT_TIMEOUT)
    return float(value) if isinstance(value, (int, float)) and value > 0 else DEFAULT_TIMEOUT


def report_killed_job(job: Any, reason: str, run_on_failure: bool = True) -> None:
    """Run the job's ``on_failure`` (unless rq already did) and the ``job_killed`` hooks; wait for them."""
    has_callback = run_on_failure and getattr(job, "_failure_callback_name", None)
    if not has_callback and not hooks("job_killed"):
        return
    timeout = timeout_seconds()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            status = run_logged(f"job {job.id}: the hooks' child", _in_child, job, reason, bool(has_callback))
        finally:
            os._exit(status)
    _wait(pid, timeout, job.id)


def _wait(pid: int, timeout: float, job_id: str) -> None:
    deadline = time.monotonic() + timeout
    reaped = False
    try:
        while time.monotonic() < deadline:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                reaped = True
                return
            time.sleep(POLL)
        log.error("job %s: on_failure/job_killed hooks still running after %.0fs; killed", job_id, timeout)
    finally:
        if not reaped:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def _in_child(job: Any, reason: str, run_on_failure: bool) -> int:
    for signum in IGNORED_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.signal(signal.SIGCONT, signal.SIG_DFL)
    signal_on_parent_death(signal.SIGKILL)
    set_title("job-killed", f"job {job.id}")
    drop_inherited_db_connections()
    failures = 0
    if run_on_failure:
        try:
            job.failure_callback(job, job.connection, JobKilledByPool, JobKilledByPool(reason), None)
        except Exception:
            failures += 1
            log.error("job %s: on_failure callback raised:\n%s", job.id, traceback.format_exc())
    for func in hooks("job_killed"):
        try:
            func(job, reason)
        except Exception:
            failures += 1
            log.error("job %s: job_killed hook %s raised:\n%s", job.id, _name(func), traceback.format_exc())
    from django.db import connections

    connections.close_all()
    return 1 if failures else 0


def _name(func: Any) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"
