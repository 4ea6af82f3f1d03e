"""The flags the worker's parts share: set by a signal handler, read by the loop or the job child path.

Signal handlers only set flags (and kill a job child); the dequeue and the job path act on them.
Keeping them on one base lets each part of :class:`~django_rq_pool.worker.mixin.PoolWorkerMixin`
read what another part sets.
"""

from __future__ import annotations

from django_rq_pool.common.lineage import Lineage
from django_rq_pool.worker.base import WorkerBase


class PoolWorkerState(WorkerBase):
    """The pool's per-worker flags and the lineage page the master reads."""

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
    _pool_worker_pid = 0  # set before each job child's fork: the job child dies with this process
    _pool_job_in_hand: str | None = None  # dequeued and not yet executed: quitting now leaves it to the janitor

    def _pool_record_lineage(self, job_child: int) -> None:
        """Keep the master's page current: if this worker is killed, the master kills these."""
        if self.pool_lineage is not None:
            process = getattr(self.scheduler, "_process", None)
            self.pool_lineage.record(job_child, getattr(process, "pid", None) or 0)
