"""Jobs the integration tests enqueue. Each records what it did in Redis."""

from __future__ import annotations

import json
import os
import time

from rq import get_current_job

DONE = "test:done"


def _record(**fields: object) -> None:
    job = get_current_job()
    payload = {"job": job.id, "pid": os.getpid(), "worker_pid": os.getppid(), **fields}
    job.connection.rpush(DONE, json.dumps(payload))


def record(token: str) -> str:
    _record(token=token)
    return token


def record_environ(token: str) -> str:
    _record(token=token, RQ_JOB_ID=os.environ.get("RQ_JOB_ID"), RQ_WORKER_ID=os.environ.get("RQ_WORKER_ID"))
    return token


def sleep_then_record(token: str, seconds: float) -> str:
    time.sleep(seconds)
    _record(token=token)
    return token


def fail(reason: str = "boom") -> None:
    raise RuntimeError(reason)


def db_backend(token: str) -> int:
    """Query PostgreSQL and record which backend served this job."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), count(*) FROM pg_stat_activity")
        backend, _ = cursor.fetchone()
    _record(token=token, backend=backend)
    return backend


def hold_memory(megabytes: int) -> None:
    """Allocate memory that stays in the worker (SimpleWorker) to trigger a memory limit."""
    _HELD.append(bytearray(megabytes * 1024 * 1024))
    _record(token=f"held-{megabytes}")


_HELD: list[bytearray] = []


def log_warning(token: str) -> str:
    """Log through an application logger (not rq's), then record; for the log-file tests."""
    import logging

    logging.getLogger("testapp.jobs").warning("job log line %s", token)
    _record(token=token)
    return token


def blpop_then_record(token: str, seconds: int) -> str:
    """Block on the job's own connection (in a SimpleWorker: the worker's socket), then record."""
    get_current_job().connection.blpop(["test:nothing-comes"], timeout=seconds)
    _record(token=token)
    return token


def django_caches(token: str) -> str:
    """Record which of Django's lazy caches this job child found built, then use them."""
    import datetime
    import re

    from django.template import engines
    from django.template.loader import render_to_string
    from django.urls import get_resolver, reverse
    from django.utils.translation import trans_real

    resolver = get_resolver()
    urls = bool(resolver._reverse_dict)  # all read before reverse() and the render build them
    included = urls and all(bool(sub._reverse_dict) for _, sub in resolver.namespace_dict.values())
    compiled = any(loader.get_template_cache for loader in engines["django"].engine.template_loaders) if urls else None
    catalogue = bool(trans_real._translations)
    cached_regexes = set(re._cache)  # type: ignore[attr-defined]
    reversed_url = reverse("more:detail", args=[7])
    rendered = render_to_string("testapp/hello.html", {"name": token, "day": datetime.date(2026, 11, 30)})
    _record(
        token=token,
        urls=urls,
        included=included,
        templates=bool(engines._engines),
        compiled=compiled,
        catalogue=catalogue,
        regexes_compiled=[str(key[1]) for key in set(re._cache) - cached_regexes],  # type: ignore[attr-defined]
        reversed=reversed_url,
        rendered=rendered.strip(),
    )
    return token
