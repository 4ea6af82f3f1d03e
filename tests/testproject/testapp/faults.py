"""Fault injection for the master's unexpected-error path, which no input reaches.

With ``$TEST_MASTER_FAULT`` naming a file, the master's loop raises once that file exists.
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
