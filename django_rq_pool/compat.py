"""Differences between the supported releases of rq and psutil, kept in one place.

The supported range is declared in ``setup.cfg`` and tested at both ends (``runtests.py
--versions``). Each shim names the release that made it unnecessary, so it can go when the
floor passes that release.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psutil
from rq.job import JobStatus


def execution_worker_name(execution: Any, load_job: Callable[[], Any | None]) -> str | None:
    """The name of the worker that registered ``execution``; None when it cannot be told.

    rq records it on the execution since 2.11. Before that only the job child that started
    the job wrote its worker's name, on the job (``load_job`` returns it, or None if it is
    gone): an execution whose job is not STARTED has no known owner then, and rq's registry
    maintenance fails it later (as AbandonedJobError).
    """
    if hasattr(execution, "worker_name"):
        return execution.worker_name or None
    job = load_job()
    if job is None or job.get_status() != JobStatus.STARTED:
        return None
    return job.worker_name or None


def inet_connections(process: psutil.Process) -> list[Any]:
    """The process's TCP/UDP sockets: ``net_connections`` since psutil 6.0, ``connections`` before."""
    method = getattr(process, "net_connections", None) or process.connections
    return method(kind="inet")
