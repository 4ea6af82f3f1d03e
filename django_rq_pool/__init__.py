"""django-rq-pool: run a pool of rq workers from one Django process."""

from django_rq_pool.common.job_killed import JobKilledByPool
from django_rq_pool.hooks import WorkerContext, after_prefork, after_spawn, job_killed, setup

__all__ = ["JobKilledByPool", "WorkerContext", "after_prefork", "after_spawn", "job_killed", "setup"]
__version__ = "0.1.0"
