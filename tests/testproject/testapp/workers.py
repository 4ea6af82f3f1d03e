"""Worker classes for tests that need a window inside rq's own code."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from rq.worker import SimpleWorker, Worker

DIE_BEFORE_START = "die-before-start"


class SlowSuccessSimpleWorker(SimpleWorker):
    """Records a job's success, then lingers in ``handle_job_success``: a signal can land there."""

    def handle_job_success(self, job: Any, queue: Any, started_job_registry: Any) -> None:
        super().handle_job_success(job=job, queue=queue, started_job_registry=started_job_registry)
        self.connection.rpush("test:in-success", job.id)
        time.sleep(2)


class SlowStartSimpleWorker(SimpleWorker):
    """Lingers between receiving a job and starting it: a stop signal can land there."""

    def execute_job(self, job: Any, queue: Any) -> None:
        self.connection.rpush("test:dequeued", job.id)
        time.sleep(1.5)
        super().execute_job(job, queue)


class DiesAfterRegisteringJob(Worker):
    """SIGKILLs itself once per job whose first argument is ``die-before-start``, before its job child exists.

    rq has then registered the job (started job registry) but no job child has started it.
    """

    def fork_work_horse(self, job: Any, queue: Any) -> None:
        first = job.args[0] if job.args else None
        if first == DIE_BEFORE_START and self.connection.set(f"test:died-before-start:{job.id}", 1, nx=True):
            os.kill(os.getpid(), signal.SIGKILL)
        super().fork_work_horse(job, queue)
