"""When is the pool "up"? When every wanted worker is forked AND has reached rq's listening loop.

The arbiter's ``on_ready`` fires once every worker is forked. A forked worker still has to build
its rq worker, connect to Redis and register, which takes about a second. Daemon readiness, the
hot-swap handover and systemd's READY=1 wait for that too, so "up" means "listening". The master
never talks to Redis: it reads its workers' process titles instead, which rq sets to
``rq:worker:<name>: Listening on ...`` only after registering (and to later states afterwards).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

RQ_TITLE = b"rq:worker:"


def is_listening(pid: int) -> bool:
    """True once rq has set this worker's process title (it has registered and dequeues)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read(len(RQ_TITLE)) == RQ_TITLE
    except OSError:
        return False


class ListeningGate:
    """Calls its listeners once every worker listens, after each ``on_ready`` of the arbiter."""

    def __init__(self) -> None:
        self.listeners: list[Callable[[Any], None]] = []
        self.armed = False

    def on_ready(self, arbiter: Any) -> None:
        self.armed = True
        self.on_tick(arbiter)

    def on_tick(self, arbiter: Any) -> None:
        if not self.armed or arbiter.stop_mode is not None:
            return
        live = [r.pid for r in arbiter.workers.values() if not r.stopping]
        if len(live) < arbiter.plan.total or not all(is_listening(pid) for pid in live):
            return
        self.armed = False
        log.info("all %d workers are listening", len(live))
        for listener in self.listeners:
            listener(arbiter)
