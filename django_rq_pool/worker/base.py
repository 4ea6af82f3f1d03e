"""The base the worker mixins declare for type checkers: rq's ``Worker``, whose attributes they use.

At run time the mixins stay plain classes, mixed in front of whatever worker class a list asks for.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rq.worker import Worker as WorkerBase
else:
    WorkerBase = object

__all__ = ["WorkerBase"]
