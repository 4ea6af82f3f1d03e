"""Queue classes the tests configure."""

from __future__ import annotations

from typing import Any

from django_rq.queues import DjangoRQ


class OwnDequeueQueue(DjangoRQ):
    """Has its own ``dequeue_any`` (here rq's, called through an override): the pool leaves it alone."""

    @classmethod
    def dequeue_any(cls, *args: Any, **kwargs: Any) -> Any:
        return super().dequeue_any(*args, **kwargs)
