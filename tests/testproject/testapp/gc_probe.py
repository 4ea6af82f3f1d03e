"""Probes for the copy-on-write tests: each appends the collector's state to the file $TEST_GC_PROBE.

``warm`` says whether rq's timestamp parser is built (``_strptime`` imported), which a worker's first
job would otherwise do for itself.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from typing import Any


def record(where: str) -> None:
    state = {
        "where": where,
        "pid": os.getpid(),
        "enabled": gc.isenabled(),
        "frozen": gc.get_freeze_count(),
        "warm": "_strptime" in sys.modules,
    }
    with open(os.environ["TEST_GC_PROBE"], "a") as handle:
        handle.write(json.dumps(state) + "\n")


def in_master(pid: int, context: Any) -> None:
    record("master")


def in_worker(worker: Any, context: Any) -> None:
    record("worker")
