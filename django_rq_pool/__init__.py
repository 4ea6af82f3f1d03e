"""django-rq-pool: run a pool of rq workers from one Django process."""

from django_rq_pool.hooks import WorkerContext, after_prefork, after_spawn, setup

__all__ = ["WorkerContext", "after_prefork", "after_spawn", "setup"]
__version__ = "0.1.0"
