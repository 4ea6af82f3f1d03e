"""What a reaped worker's exit sets in motion.

The log line; for an abnormal exit, killing what the worker left and a janitor for its job; the
slot a burst worker finished; a crash that came too soon after the start counts for backoff.
"""

from __future__ import annotations

import logging
import os
import time

from django_rq_pool.common.exit_codes import WORKER_HOOK_FAILED
from django_rq_pool.config.options import PoolOptions
from django_rq_pool.master.backoff import Backoff
from django_rq_pool.master.forking import describe_status, is_abnormal
from django_rq_pool.master.janitors import Janitors
from django_rq_pool.master.orphans import Orphans
from django_rq_pool.master.roster import WorkerRecord
from django_rq_pool.master.spawner import Spawner

log = logging.getLogger("django_rq_pool.master.arbiter")  # the master's own lines, as before the split


class WorkerExits:
    """Handles each reaped worker once, in the pass that reaped it."""

    def __init__(self, options: PoolOptions, orphans: Orphans, janitors: Janitors, spawner: Spawner, backoff: Backoff):
        self.options = options
        self.orphans = orphans
        self.janitors = janitors
        self.spawner = spawner
        self.backoff = backoff

    def handle(self, record: WorkerRecord, status: int) -> None:
        group = record.group
        uptime = time.monotonic() - record.started
        abnormal = is_abnormal(status)
        level = logging.WARNING if abnormal and not record.stopping else logging.INFO
        log.log(level, "worker %d [%s] %s after %.1fs", record.pid, group.name, describe_status(status), uptime)
        if abnormal:
            self.orphans.kill_left_by(record)
            if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == WORKER_HOOK_FAILED):
                self.janitors.need(record, status)  # a worker whose hook failed never took a job
        if record.lineage is not None:
            record.lineage.close()
        if self.options.burst and not abnormal:
            self.spawner.finished_slots.add((group.identity, record.context.index))
        if abnormal and not record.stopping and uptime < self.options.min_uptime:
            self.backoff.record_failure(group, f"worker {describe_status(status)} {uptime:.1f}s after start")
