"""Preload probe: remembers which process imported it (the master when preloaded, else a job child)."""

from __future__ import annotations

import json
import os

from rq import get_current_job

IMPORTED_BY = os.getpid()


def report(token: str) -> str:
    job = get_current_job()
    payload = {"token": token, "imported_by": IMPORTED_BY, "pid": os.getpid(), "worker_pid": os.getppid()}
    job.connection.rpush("test:done", json.dumps(payload))
    return token
