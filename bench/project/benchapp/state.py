"""About ``BENCH_STATE_MB`` (default 150) MB of small Python objects, built at start-up.

Many small tracked objects (dicts, lists, tuples, strings) are what a big Django project holds
after ``django.setup()``: they are what copy-on-write has to keep shared across forks.
"""

import os

RECORDS_PER_MB = 1750  # measured: one record is about 600 bytes of objects
CATALOG: list[dict] = []


def load() -> None:
    megabytes = float(os.environ.get("BENCH_STATE_MB", "150"))
    CATALOG.extend(
        {"id": i, "name": f"product-{i:07d}", "tags": [f"t{i % 97}", f"c{i % 13}"], "dims": (i % 100, i % 7, float(i))}
        for i in range(int(megabytes * RECORDS_PER_MB))
    )
