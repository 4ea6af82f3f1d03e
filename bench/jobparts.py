"""Where the Django-heavy job's time goes: each part of it, run alone in a fresh job child.

``python -m bench.perjob --parts [--rounds R]``: this process boots as an rqpool master does (the
collector off while Django sets up the bench app, the job modules preloaded, Django warmed, the
heap frozen), then forks a "worker" that forks one job child per part, R rounds with the parts in
turn. Each job child records, with ``getrusage``, its CPU time and minor page faults from its fork
to the end of the part's first run (what a job child pays), and again for a second run of the part
in the same child (the plain work, with nothing left to build or copy). First minus second is what
the child built or copied on first use. ``--freeze`` makes the worker call ``gc.freeze()`` before
each fork.
"""

from __future__ import annotations

import datetime
import gc
import json
import os
import resource
import statistics
import sys
from collections.abc import Callable
from typing import Any

Part = Callable[[], Any]


def parts() -> dict[str, Part]:
    """The trivial job, the Django-heavy job, and each part of the heavy job as it calls it."""
    from benchapp.jobs_realistic import django_heavy
    from benchapp.jobs_trivial import noop
    from benchapp.state import CATALOG
    from django.template.loader import render_to_string
    from django.urls import reverse
    from django.utils.translation import gettext

    rows = [
        {"url": f"/items/{n}/", "name": CATALOG[n]["name"], "value": n / 7, "when": datetime.date(2026, 11, 1 + n)}
        for n in range(10)
    ]
    return {
        "trivial": noop,
        "heavy": lambda: django_heavy(1),
        "reverse x10": lambda: [reverse("item", args=[n]) for n in range(10)],
        "namespaced": lambda: reverse("s3:s3-42", kwargs={"pk": 1, "slug": "report"}),
        "render": lambda: render_to_string("benchapp/heavy.html", {"name": "x", "rows": rows}),
        "gettext": lambda: gettext("This field is required."),
    }


def _usage() -> tuple[float, int]:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # a forked child's usage starts at zero
    return usage.ru_utime + usage.ru_stime, usage.ru_minflt


def job_child(part: Part, out: int) -> None:
    """Run ``part`` twice; write (first CPU ms, first faults, second CPU ms, second faults)."""
    part()
    cpu1, faults1 = _usage()
    part()
    cpu2, faults2 = _usage()
    os.write(out, json.dumps([cpu1 * 1000, faults1, (cpu2 - cpu1) * 1000, faults2 - faults1]).encode())


def fork_and_read(target: Callable[[int], None]) -> Any:
    """Fork a child running ``target(write_fd)``; its output, decoded."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            target(write)
        finally:
            os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    return json.loads(b"".join(chunks))


def worker(rounds: int, freeze: bool, out: int) -> None:
    """The worker: the collector on (as ``enter_child`` does), one job child per part per round."""
    gc.enable()
    table = parts()
    results: dict[str, list[list[float]]] = {name: [] for name in table}
    for _ in range(rounds):
        for name, part in table.items():
            if freeze:
                gc.freeze()
            results[name].append(fork_and_read(lambda fd, part=part: job_child(part, fd)))  # type: ignore[misc]
    os.write(out, json.dumps(results).encode())


def boot() -> None:
    """Set the bench app up as ``manage.py rqpool`` does before its first fork."""
    from django_rq_pool.master.collector import pause_while_loading

    pause_while_loading(["manage.py", "rqpool"])
    import django

    django.setup()
    from django_rq_pool.master.preload import preload_job_modules, warm_worker_caches
    from django_rq_pool.master.warm import warm_django

    preload_job_modules()
    warm_worker_caches()
    warm_django()
    gc.freeze()


def run(rounds: int, freeze: bool) -> int:
    boot()
    results = fork_and_read(lambda fd: worker(rounds, freeze, fd))
    print(f"per job child, median of {rounds}{' (gc.freeze() in the worker)' if freeze else ''}")
    print(f"{'part':<13}{'CPU ms':>8}{'faults':>8}{'2nd CPU':>9}{'2nd flt':>9}")
    for name, rows in results.items():
        medians = [statistics.median(row[i] for row in rows) for i in range(4)]
        print(f"{name:<13}{medians[0]:>8.2f}{medians[1]:>8.0f}{medians[2]:>9.2f}{medians[3]:>9.0f}")
    sys.stdout.flush()
    return 0
