"""What runs in each forked worker process: rq's own loop, taught the pool's signals.

The master signals workers with resque's meanings, which rq lacks (rq dies outright on
USR1, USR2 and HUP). So the worker class a queue list asks for is subclassed at fork time
with :class:`PoolWorkerMixin`, which installs these handlers:

* QUIT: warm stop (finish the current job, then exit); also sent by the kernel if the master dies.
* TERM: as QUIT under a graceful TERM mode, else kill the current job (it ends failed) and exit.
* INT: rq's behaviour (warm stop; a second one more than 1 s later is a cold stop).
* USR1: kill the current job now; it ends failed with the reason. USR2: pause. CONT: resume.
* HUP: reopen the log file (the master forwards its HUP so logrotate works).

Its parts, one concern each: ``signals`` (the handlers), ``paused_dequeue`` (the dequeue that
sees stops and pauses), ``outage`` (stopping while Redis is unreachable), ``job_child`` (forking
and failing jobs, memory recycling), ``heartbeats`` (rq's heartbeats and state writes in fewer
round trips), sharing the flags of ``state``. ``entry.run_worker`` builds and runs the worker.
"""

from __future__ import annotations

from django_rq_pool.worker.heartbeats import FewerRoundTripsMixin
from django_rq_pool.worker.job_child import JobChildMixin
from django_rq_pool.worker.outage import RedisOutageMixin
from django_rq_pool.worker.paused_dequeue import PausedDequeueMixin
from django_rq_pool.worker.signals import PoolSignalsMixin


class PoolWorkerMixin(PoolSignalsMixin, PausedDequeueMixin, RedisOutageMixin, JobChildMixin, FewerRoundTripsMixin):
    """Signal handling, pausing, Redis outages, memory recycling and fewer round trips for any rq worker class."""
