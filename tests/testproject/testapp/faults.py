"""Fault injection for unexpected-error paths, which no input reaches.

With ``$TEST_MASTER_FAULT`` naming a file, the master's loop raises once that file exists.
With ``$TEST_JANITOR_FAULT`` set, every janitor raises instead of accounting for its worker.
"""

from __future__ import annotations

import os


def install(path: str) -> None:
    from django_rq_pool.master.arbiter import Arbiter

    original = Arbiter.update_title

    def update_title(self: Arbiter) -> None:
        if os.path.exists(path) and os.getpid() == self.pid:
            raise RuntimeError("injected fault")
        original(self)

    Arbiter.update_title = update_title  # type: ignore[method-assign]


def break_janitors() -> None:
    from django_rq_pool.helpers import janitor

    def fail_jobs_of_dead_worker(*args: object) -> int:
        raise RuntimeError("injected janitor fault")

    janitor.fail_jobs_of_dead_worker = fail_jobs_of_dead_worker
