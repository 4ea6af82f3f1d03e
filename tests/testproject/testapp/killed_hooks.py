"""An application's own job records, as the job_killed tests keep them: one row per call, in PostgreSQL."""

from __future__ import annotations

import os
import time


def _row(job_id: str, kind: str, reason: str) -> None:
    from django.db import connection

    table = os.environ["TEST_KILLED_TABLE"]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (job_id, kind, reason, pid, parent) VALUES (%s, %s, %s, %s, %s)",
            [job_id, kind, reason, os.getpid(), os.getppid()],
        )


def record_row(job, reason: str) -> None:  # type: ignore[no-untyped-def]
    _row(job.id, "hook", reason)


def on_failure(job, connection, exc_type, exc, tb) -> None:  # type: ignore[no-untyped-def]
    _row(job.id, f"on_failure:{exc_type.__name__}", str(exc))


def raising(job, reason: str) -> None:  # type: ignore[no-untyped-def]
    raise RuntimeError("job_killed hook failed on purpose")


def hanging(job, reason: str) -> None:  # type: ignore[no-untyped-def]
    time.sleep(3600)
