"""The collector's off switch for the whole of an rqpool master's boot.

CPython's recipe for a process that forks without exec (see ``gc.freeze``): ``gc.disable()``
early in the parent, ``gc.freeze()`` right before each fork (the arbiter), ``gc.enable()`` early
in each child (``child.enter_child``). Early means before Django imports the project's models and
runs its ``ready()`` methods, where a large app builds most of what workers share: a collection
there frees objects between long-lived ones, and each hole a worker fills later un-shares a page.
Loading with the collector off is faster too, as the collector no longer walks the growing heap
over and over (a third off the benchmark app's boot).
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Sequence

COMMAND = "rqpool"


def is_rqpool_process(argv: Sequence[str]) -> bool:
    """Django's own rule for ``manage.py`` and ``django-admin``: ``argv[1]`` names the command."""
    return len(argv) > 1 and argv[1] == COMMAND


def pause_while_loading(argv: Sequence[str] | None = None) -> None:
    """Turn the collector off now if this process is an rqpool master (it never turns back on
    for what is loaded before the first fork: that is frozen instead)."""
    if is_rqpool_process(sys.argv if argv is None else argv):
        gc.disable()
