"""The pool's overrides in Redis (``rqpool:overrides:<name>``), kept by the control child.

Read once when Redis is first reachable and handed to the master; from then on, what changed in
the master's overrides is written back, field by field.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis

from django_rq_pool.control import wire

log = logging.getLogger("django_rq_pool.control.child")  # one logger for the control child


class StoredOverrides:
    """What the control child last stored, so that it writes only what changed."""

    def __init__(self) -> None:
        self.loaded = False  # the stored overrides were read and handed to the master
        self.persisted: dict[str, Any] | None = None

    def load(self, connection: redis.Redis, pool_name: str) -> dict[str, dict[str, int]]:
        """The stored overrides, malformed entries left out with a warning."""
        stored = connection.hgetall(wire.overrides_key(pool_name))
        overrides = {}
        for key, value in stored.items():
            try:
                item = json.loads(value)
                overrides[wire.text(key)] = {"count": int(item["count"]), "configured": int(item["configured"])}
            except (ValueError, KeyError, TypeError):
                log.warning("control: ignoring a malformed stored override for %r", key[:80])
        self.loaded = True
        self.persisted = overrides
        return overrides

    def reconnected(self) -> None:
        """Store every override again: a restarted Redis may have lost them."""
        if self.loaded:
            self.persisted = {}

    def persist(self, connection: redis.Redis, pool_name: str, current: dict[str, Any]) -> None:
        """Store what changed in the master's overrides (retried after an outage).

        Field by field, so pools sharing a name (a hot swap) do not erase each other's lists.
        """
        previous = self.persisted or {}
        if current == previous and self.persisted is not None:
            return
        key = wire.overrides_key(pool_name)
        pipe = connection.pipeline(transaction=True)
        for name, item in current.items():
            if previous.get(name) != item:
                pipe.hset(key, name, json.dumps(item))
        gone = [name for name in previous if name not in current]
        if gone:
            pipe.hdel(key, *gone)
        pipe.execute()
        self.persisted = current
