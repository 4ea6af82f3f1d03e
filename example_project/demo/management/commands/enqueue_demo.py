"""``manage.py enqueue_demo``: put a batch of demo jobs on every queue."""

from typing import Any

import django_rq
from django.core.management.base import BaseCommand, CommandParser

from demo import jobs


class Command(BaseCommand):
    help = "Enqueue demo jobs on the foo, bar and baz queues."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, default=5, help="jobs per queue (default: 5)")

    def handle(self, *args: Any, **options: Any) -> None:
        for name in ("foo", "bar", "baz"):
            queue = django_rq.get_queue(name)
            for n in range(options["count"]):
                queue.enqueue(jobs.greet, f"{name}-{n}")
            queue.enqueue(jobs.slow_sum, list(range(10)))
        self.stdout.write(f"enqueued {options['count'] + 1} jobs on each of foo, bar, baz")
