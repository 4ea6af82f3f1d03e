"""The registry document as ``rqpoolctl status`` prints it: one block per host."""

from __future__ import annotations

import itertools
import time
from typing import Any


def _count(value: Any) -> str:
    return "-" if value is None else str(value)


def _bounds(item: dict[str, Any]) -> str:
    """An autoscaled list's 'min..max'; '-' for a fixed one."""
    if item.get("min") is None:
        return "-"
    return f"{item['min']}..{item.get('max')}"


def status_table(document: dict[str, Any], now: float | None = None) -> str:
    """Pools grouped by host; per list: configured, autoscaling bounds, override, desired, running, busy."""
    now = time.time() if now is None else now
    pools = document.get("pools", [])
    if not pools:
        return "no live pool\n"
    lines = []
    for host, members in itertools.groupby(pools, key=lambda pool: pool.get("host")):
        lines.append(f"{host}")
        for pool in members:
            age = max(0.0, now - float(pool.get("heartbeat_at", now)))
            lines.append(
                f"  {pool['name']} ({pool['id']}) {pool['state']}, heartbeat {age:.1f}s ago, "
                f"{len(pool.get('workers', []))} workers, {pool.get('source', '')}"
            )
            rows = [("LIST", "CONF", "MIN..MAX", "OVERRIDE", "DESIRED", "RUNNING", "BUSY", "")]
            for item in pool.get("lists", []):
                notes = []
                if item.get("paused"):
                    notes.append("paused")
                if item.get("backoff"):
                    notes.append(f"backing off: {item['backoff']['reason']}")
                rows.append(
                    (
                        item["key"],
                        _count(item.get("configured")),
                        _bounds(item),
                        _count(item.get("override")),
                        _count(item.get("desired")),
                        _count(item.get("running")),
                        _count(item.get("busy")),
                        "; ".join(notes),
                    )
                )
            widths = [max(len(row[i]) for row in rows) for i in range(7)]
            for row in rows:
                cells = [row[0].ljust(widths[0])] + [row[i].rjust(widths[i]) for i in range(1, 7)]
                lines.append(("    " + "  ".join(cells) + ("  " + row[7] if row[7] else "")).rstrip())
    return "\n".join(lines) + "\n"
