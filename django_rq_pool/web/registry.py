"""What the web views read from the control plane: the registry, the backlog and job links."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import NoReverseMatch, reverse
from redis import RedisError

from django_rq_pool.control import client
from django_rq_pool.web.page import JobLink, queues_of


class Unreadable(Exception):
    """The registry cannot be read now; the message says why, in one line."""


def missing_entry() -> str | None:
    """Why the registry has no Redis to live in, when ``RQ_QUEUES`` lacks its entry."""
    queue = client.control_queue_name()
    if queue in (getattr(settings, "RQ_QUEUES", None) or {}):
        return None
    return (
        f"RQ_QUEUES has no {queue!r} entry, whose Redis holds the pools' registry: "
        "add it, or name another entry in RQ_POOL_CONTROL_QUEUE"
    )


def read_registry(with_backlog: bool = True) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The registry document and (unless not wanted) the backlog of every queue it names."""
    problem = missing_entry()
    if problem:
        raise Unreadable(problem)
    try:
        document = client.read_status()
        return document, client.backlog(queues_of(document)) if with_backlog else {}
    except RedisError as exc:
        raise Unreadable(f"the registry could not be read: {exc}") from None


def job_link() -> JobLink:
    """Links to django-rq's admin job page when its dashboard is mounted, else no links."""
    try:
        from django_rq.settings import get_queues_map

        reverse("admin:django_rq_job_detail", args=[0, "probe"])
    except (ImportError, NoReverseMatch):
        return lambda queue, job_id: None
    indexes = get_queues_map()

    def link(queue: str, job_id: str) -> str | None:
        if queue not in indexes:
            return None
        try:
            return reverse("admin:django_rq_job_detail", args=[indexes[queue], job_id])
        except NoReverseMatch:
            return None

    return link
