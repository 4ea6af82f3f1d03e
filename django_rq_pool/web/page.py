"""Turns the registry document into what the page shows: ages, per-queue backlog, job links."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

JobLink = Callable[[str, str], str | None]  # (queue name, job id) -> URL or None


def queues_of(document: dict[str, Any]) -> list[str]:
    """Every queue named by any list of any pool, once, in first-seen order."""
    seen: dict[str, None] = {}
    for pool in document.get("pools", []):
        for row in pool.get("lists", []):
            for queue in row.get("queues", []):
                seen.setdefault(queue, None)
    return list(seen)


def age(now: float, then: float | None) -> float | None:
    return None if then is None else max(0.0, now - then)


def human_duration(seconds: float | None) -> str:
    """``"4 s"``, ``"3 min 2 s"``, ``"5 h 12 min"``, ``"2 d 3 h"``; an em dash when unknown."""
    if seconds is None:
        return "—"
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def human_bytes(count: int | None) -> str:
    if count is None:
        return "—"
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def pool_view(
    pool: dict[str, Any], backlog: dict[str, dict[str, Any]], now: float, job_link: JobLink
) -> dict[str, Any]:
    """One pool as the template needs it; every value is plain data, escaped by the template."""
    lists = []
    for row in pool.get("lists", []):
        queues = [
            {
                "name": name,
                "count": backlog.get(name, {}).get("count"),
                "oldest_age": human_duration(backlog.get(name, {}).get("oldest_age")),
            }
            for name in row.get("queues", [])
        ]
        backoff = row.get("backoff")
        lists.append(
            {
                **row,
                "backlog": queues,
                "backoff_text": (
                    f"backing off for {human_duration(age(backoff['until'], now))}: {backoff.get('reason', '')}"
                    if backoff
                    else ""
                ),
            }
        )
    first_queue = {row.get("key"): (row.get("queues") or [None])[0] for row in pool.get("lists", [])}
    workers = []
    for worker in pool.get("workers", []):
        job_id = worker.get("job_id")
        queue = first_queue.get(worker.get("list"))
        workers.append(
            {
                **worker,
                "job_url": job_link(queue, job_id) if job_id and queue else None,
                "memory": human_bytes(worker.get("uss")),
                "age": human_duration(age(now, worker.get("started_at"))),
            }
        )
    return {
        **pool,
        "uptime": human_duration(age(now, pool.get("started_at"))),
        "heartbeat_age": human_duration(age(now, pool.get("heartbeat_at"))),
        "lists": lists,
        "workers": workers,
        "paused": pool.get("state") == "paused",
    }


def page_view(document: dict[str, Any], backlog: dict[str, dict[str, Any]], job_link: JobLink) -> list[dict[str, Any]]:
    now = document.get("generated_at", 0.0)
    return [pool_view(pool, backlog, now, job_link) for pool in document.get("pools", [])]
