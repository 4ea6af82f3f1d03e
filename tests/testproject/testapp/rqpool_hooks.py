"""Hooks driven by TEST_HOOKS in the environment, so each test chooses their behaviour."""

from __future__ import annotations

import json
import os
import time

import django_rq_pool

MODES = set(filter(None, os.environ.get("TEST_HOOKS", "").split(",")))


@django_rq_pool.setup
def query_db_in_master() -> None:
    if "db-setup" in MODES:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            os.environ["TEST_MASTER_BACKEND"] = str(cursor.fetchone()[0])
    if "setup-raises" in MODES:
        raise RuntimeError("setup hook failed on purpose")


@django_rq_pool.after_prefork
def after_prefork(worker, context) -> None:  # type: ignore[no-untyped-def]
    if "prefork-raises" in MODES or f"prefork-raises:{context.group.name}" in MODES:
        raise RuntimeError(f"after_prefork failed on purpose in [{context.group.name}]")
    if os.environ.get("TEST_PREFORK_SLEEP"):  # a slow hook: the worker is still starting meanwhile
        worker.connection.rpush("test:in-prefork", os.getpid())
        time.sleep(float(os.environ["TEST_PREFORK_SLEEP"]))
    fail_while = os.environ.get("TEST_PREFORK_FAILS_WHILE")  # a path: workers fail to start while it exists
    if fail_while and os.path.exists(fail_while):
        raise RuntimeError(f"after_prefork failed on purpose while {fail_while} exists")
    if "record-prefork" in MODES:
        payload = {"pid": os.getpid(), "queues": list(context.queues), "index": context.index, "name": context.name}
        if "db-prefork" in MODES:
            from django.db import connection

            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                payload["backend"] = cursor.fetchone()[0]
            payload["master_backend"] = os.environ.get("TEST_MASTER_BACKEND")
        worker.connection.rpush("test:prefork", json.dumps(payload))
    if "record-title" in MODES:  # what ps shows for this worker before any of rq's code ran
        with open("/proc/self/cmdline", "rb") as handle:
            title = handle.read().split(b"\0")[0].decode()
        worker.connection.rpush("test:titles", json.dumps({"pid": os.getpid(), "title": title}))
    if "record-worker-environ" in MODES:
        execute_job = worker.execute_job

        def execute_then_record(job, queue) -> None:  # type: ignore[no-untyped-def]
            execute_job(job, queue)
            seen = {"job": job.id, "RQ_JOB_ID": os.environ.get("RQ_JOB_ID")}
            worker.connection.rpush("test:worker-environ", json.dumps(seen))

        worker.execute_job = execute_then_record


@django_rq_pool.after_spawn
def after_spawn(pid, context) -> None:  # type: ignore[no-untyped-def]
    if "spawn-raises" in MODES:
        raise RuntimeError("after_spawn failed on purpose")


@django_rq_pool.job_killed
def job_killed(job, reason) -> None:  # type: ignore[no-untyped-def]
    if os.environ.get("TEST_KILLED_TABLE"):
        from .killed_hooks import record_row

        record_row(job, reason)
