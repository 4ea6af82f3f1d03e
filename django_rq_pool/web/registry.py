"""What the web views read from the control plane: the registry, the backlog and job links."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import NoReverseMatch, reverse
from redis import RedisError

from django_rq_pool.compat import JOB_PAGE_URL_NAMES, django_rq_queue_indexes
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
    """Links to django-rq's job page wherever its dashboard is mounted, else no links."""
    url_name = next((name for name in JOB_PAGE_URL_NAMES if _reverses(name)), None)
    if url_name is None:
        return lambda queue, job_id: None
    indexes = django_rq_queue_indexes()

    def link(queue: str, job_id: str) -> str | None:
        if queue not in indexes:
            return None
        try:
            return reverse(url_name, args=[indexes[queue], job_id])
        except NoReverseMatch:
            return None

    return link


def _reverses(url_name: str) -> bool:
    try:
        reverse(url_name, args=[0, "probe"])
    except NoReverseMatch:
        return False
    return True
