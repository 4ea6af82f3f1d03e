"""Differences between the supported releases of rq, django-rq and psutil, kept in one place.

The supported range is declared in ``setup.cfg`` and tested at both ends (``runtests.py
--versions``). Each shim names the release that made it unnecessary, so it can go when the
floor passes that release.
"""

from __future__ import annotations

import inspect
from typing import Any

import psutil
from rq.executions import Execution
from rq.utils import as_text
from rq.worker import SimpleWorker, Worker, WorkerStatus

# rq 2.11 records on each execution the name of the worker that registered it; the janitor needs it
# to tell a dead worker's registered jobs from everyone else's.
EXECUTIONS_NAME_THEIR_WORKER = "worker_name" in inspect.signature(Execution.__init__).parameters
_WORKER_NAME_FIELD = "worker_name"  # the execution hash's field, as rq 2.11 writes it


class _NamesItsExecutions:
    """Before rq 2.11: write the worker's name on each execution, in the transaction that registers it.

    This is rq 2.6.1 to 2.10's ``prepare_execution`` plus that one field, which rq 2.11 reads
    back natively, so executions written by either release are understood by both. It comes
    before a queue list's own worker class, so such a class's ``prepare_execution`` is not used
    on these releases.
    """

    def prepare_execution(self: Any, job: Any) -> Execution:
        with self.connection.pipeline() as pipeline:
            self.execution = Execution.create(job, self.get_heartbeat_ttl(job), pipeline=pipeline)
            pipeline.hset(self.execution.key, _WORKER_NAME_FIELD, self.name)
            self.set_state(WorkerStatus.BUSY, pipeline=pipeline)
            pipeline.execute()
        return self.execution


# Mixed into every pool worker's class, before the worker class a queue list asks for.
WORKER_SHIMS: tuple[type, ...] = () if EXECUTIONS_NAME_THEIR_WORKER else (_NamesItsExecutions,)


def execution_worker_name(execution: Execution) -> str | None:
    """The name of the worker that registered ``execution`` (a pool worker on any supported rq)."""
    if EXECUTIONS_NAME_THEIR_WORKER:
        return execution.worker_name or None
    raw = execution.connection.hget(execution.key, _WORKER_NAME_FIELD)
    return as_text(raw) if raw else None


def runs_jobs_in_process(worker_class: type) -> bool:
    """Whether this worker class runs each job in its own process, with no job child to heartbeat.

    Since rq 2.7 that is every class that is not a ``Worker``; before, ``SimpleWorker`` derived
    from ``Worker``.
    """
    return issubclass(worker_class, SimpleWorker) or not issubclass(worker_class, Worker)


def inet_connections(process: psutil.Process) -> list[Any]:
    """The process's TCP/UDP sockets: ``net_connections`` since psutil 6.0, ``connections`` before."""
    method = getattr(process, "net_connections", None) or process.connections
    return method(kind="inet")


# django-rq's job page, by where its dashboard is mounted: inside the admin (django-rq 4.0+, when
# RQ_SHOW_ADMIN_LINK is on), ``include("django_rq.urls")`` on 4.0+, the same include before 4.0.
JOB_PAGE_URL_NAMES = ("admin:django_rq_job_detail", "django_rq:job_detail", "rq_job_detail")


def django_rq_queue_indexes() -> dict[str, int]:
    """Each queue's index in django-rq's dashboard URLs: ``get_queues_map()`` since django-rq 4.0.

    Before 4.0 django-rq computes ``QUEUES_MAP`` once, from ``RQ_QUEUES`` at import.
    """
    from django_rq import settings as django_rq_settings

    queues_map = getattr(django_rq_settings, "get_queues_map", None)
    return queues_map() if queues_map else dict(django_rq_settings.QUEUES_MAP)
