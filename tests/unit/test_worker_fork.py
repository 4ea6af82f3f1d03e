"""Which fork_work_horse a pool worker uses: the pool's own only in place of rq's, never of a user's."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from rq.worker import Worker

from django_rq_pool.worker.mixin import PoolWorkerMixin


class CustomForkWorker(Worker):
    forked: list[str]

    def fork_work_horse(self, job: Any, queue: Any) -> None:
        self.forked.append(job)


def test_a_worker_class_with_its_own_fork_work_horse_keeps_it():
    pool_class = type("PoolCustomForkWorker", (PoolWorkerMixin, CustomForkWorker), {})
    worker = object.__new__(pool_class)  # no Redis needed: only the method resolution is under test
    worker.forked = []
    worker.name = "w"
    job = SimpleNamespace(id="job")
    worker.fork_work_horse(job, "queue")
    assert worker.forked == [job]
