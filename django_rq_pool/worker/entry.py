"""The worker process's entry: build the rq worker a queue list asks for, run it, exit.

``run_worker`` is what the master's spawner calls in a freshly forked child; it never returns.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import traceback
from typing import Any, NoReturn

from django_rq_pool.common.child import enter_child
from django_rq_pool.common.exit_codes import WORKER_BOOT_FAILED, WORKER_HOOK_FAILED, WORKER_LEFT_A_JOB
from django_rq_pool.common.heartbeat_rule import worker_heartbeat_kwargs
from django_rq_pool.common.inherited_db import drop_inherited_db_connections
from django_rq_pool.common.lineage import Lineage
from django_rq_pool.common.log_files import enter_worker as use_worker_log_file
from django_rq_pool.common.titles import forks_become, set_title, titled
from django_rq_pool.compat import WORKER_SHIMS
from django_rq_pool.config.options import PoolOptions
from django_rq_pool.hooks import WorkerContext, run_hooks
from django_rq_pool.worker.dequeue import ClaimingWorkerMixin, HeldClaim
from django_rq_pool.worker.mixin import PoolWorkerMixin
from django_rq_pool.worker.prefork import PreforkMixin

log = logging.getLogger("django_rq_pool.worker.mixin")  # the name users configure; kept across the split


def build_worker(context: WorkerContext, options: PoolOptions) -> Any:
    """Build the rq worker as django-rq does, with the pool's signal handling and dequeue mixed in."""
    import django_rq
    from django_rq.workers import get_worker_class

    group_options = context.group.options
    base = get_worker_class(group_options.worker_class)
    worker_class = type(
        f"Pool{base.__name__}",
        (PreforkMixin, PoolWorkerMixin, ClaimingWorkerMixin, *WORKER_SHIMS, base),
        {
            "pool_term_graceful": options.term_graceful,
            "pool_memory_limit": group_options.memory_limit,
            "pool_prefork_job_child": group_options.prefork_job_child,
        },
    )
    return django_rq.get_worker(
        *context.group.queues,
        job_class=group_options.job_class,
        queue_class=group_options.queue_class,
        worker_class=worker_class,
        name=context.name,
        **worker_heartbeat_kwargs(options.stuck_timeout),
    )


def _max_jobs(limit: int | None) -> int | None:
    """Spread retirements: each worker takes up to 10% more jobs than the limit."""
    return None if limit is None else limit + random.randint(0, limit // 10)


def run_worker(
    context: WorkerContext,
    options: PoolOptions,
    master_fds: tuple[int, ...],
    listening_fd: int,
    start_paused: bool = False,
    lineage: Lineage | None = None,
) -> NoReturn:
    """Entry point in the forked child; never returns into the master's stack.

    ``start_paused``: the pool is paused (USR2), so this worker takes no job until CONT.
    ``lineage``: the page where it keeps the pids of its job child and scheduler for the master.
    """
    status = 0
    try:
        if not enter_child(context.group.name, context.master_pid, master_fds, remember=True):
            log.warning("master %d is gone before the worker started; exiting", context.master_pid)
            os._exit(0)
        set_title("worker", f"starting [{context.group.name}] #{context.index} as {context.name}")
        forks_become(titled("worker-child", f"forked by worker {context.name} (pid {os.getpid()})"))
        use_worker_log_file(context.group.name, context.index)
        drop_inherited_db_connections()
        worker = build_worker(context, options)
        worker.pool_listening_fd = listening_fd
        worker.pool_lineage = lineage
        try:
            run_hooks("after_prefork", worker, context)
        except Exception:
            log.error("after_prefork hook failed in worker %d:\n%s", os.getpid(), traceback.format_exc())
            os._exit(WORKER_HOOK_FAILED)
        if start_paused:
            worker.log.info("Worker %s: the pool is paused: taking no job until CONT", worker.name)
            worker._pool_paused = True
        group_options = context.group.options
        worker.work(
            burst=options.burst,
            logging_level=logging.getLevelName(options.logging_level),
            max_jobs=_max_jobs(group_options.max_jobs),
            max_idle_time=group_options.max_idle_time,
            with_scheduler=group_options.with_scheduler,
            dequeue_strategy=group_options.dequeue_strategy,
        )
        left = worker._pool_job_in_hand or HeldClaim.job_id()
        if left is not None:
            # rq's loop logs an unexpected error and returns as if done: a clean exit would get no janitor.
            log.error("worker %d quit on an error before running job %s; the janitor puts it back", os.getpid(), left)
            status = WORKER_LEFT_A_JOB
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        log.error("worker %d failed:\n%s", os.getpid(), traceback.format_exc())
        status = WORKER_BOOT_FAILED
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
