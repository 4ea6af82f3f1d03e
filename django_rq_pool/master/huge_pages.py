"""Back the master's loaded memory with huge pages once, before its first fork (Linux 6.1+).

rq forks a job child for every job. A fork copies the forking process's page tables and the
child's exit tears its own down, one entry per 4 KiB page: for a worker holding a 150 MB app,
38,000 entries each way, more CPU than a trivial job itself. A 2 MiB huge page is one entry.
``madvise(MADV_COLLAPSE)`` on the master's anonymous memory, after Django is set up and warmed
and before anything is forked, makes every worker inherit those entries, so each fork of a job
child copies one entry per 2 MiB instead of 512, and each exit frees as few.

Copy-on-write stays per 4 KiB page: the first write to a shared huge page splits its entry in the
writing process only, and copies the one page written. Only ranges whose pages are mostly present
are collapsed (a collapse fills the missing ones), and ``MADV_HUGEPAGE`` is not set, so khugepaged
never makes private huge copies in the workers later. It must run before the first fork: a
collapse afterwards would copy the master's pages away from the workers sharing them.

The collapse copies every range into a newly allocated huge page, which costs time (most of it
in the kernel, with the GIL released): it starts in a thread while the master warms Django, and a
last pass before the first fork collapses what the warming loaded meanwhile.

On by default where the kernel allows it; ``settings.RQ_POOL_HUGE_PAGES = False`` turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import signal
import threading
import time
from typing import NamedTuple

from django.conf import settings

log = logging.getLogger(__name__)
SETTING = "RQ_POOL_HUGE_PAGES"
MADV_COLLAPSE = 25
HUGE_PAGE = 2 << 20
PAGE = 4096
MIN_PRESENT = 0.5  # a range with fewer of its pages present is left alone: collapsing it would fill them
STOPS = {  # errors after which no other range would collapse either
    errno.EINVAL: "the kernel does not collapse (Linux 6.1+ with transparent huge pages needed)",
    errno.ENOMEM: "no free huge page",
}

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]


class Collapsed(NamedTuple):
    """What a collapse did: huge pages made, and why it stopped early (None: it did not)."""

    huge_pages: int
    stopped: str | None


def anonymous_ranges(maps: str) -> list[tuple[int, int]]:
    """The 2 MiB-aligned interiors of the private, writable, anonymous mappings in a /proc/PID/maps text."""
    ranges = []
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 5:
            continue
        path = fields[5].strip() if len(fields) == 6 else ""
        if not fields[1].startswith("rw") or fields[1][3] != "p" or path not in ("", "[heap]"):
            continue
        start, end = (int(address, 16) for address in fields[0].split("-"))
        first = -(-start // HUGE_PAGE) * HUGE_PAGE
        last = end // HUGE_PAGE * HUGE_PAGE
        if last > first:
            ranges.append((first, last))
    return ranges


def present_runs(first: int, last: int) -> list[tuple[int, int]]:
    """The runs of adjacent 2 MiB ranges from ``first`` to ``last`` with MIN_PRESENT of their pages in memory."""
    pages = (last - first) // PAGE
    vector = ctypes.create_string_buffer(pages)
    if _libc.mincore(first, last - first, vector) != 0:
        return []  # unmapped since /proc/self/maps was read
    per_range = HUGE_PAGE // PAGE
    runs: list[tuple[int, int]] = []
    for index in range(0, pages, per_range):
        present = per_range - vector.raw[index : index + per_range].count(0)
        if present < per_range * MIN_PRESENT:
            continue
        address = first + index * PAGE
        if runs and runs[-1][1] == address:
            runs[-1] = (runs[-1][0], address + HUGE_PAGE)
        else:
            runs.append((address, address + HUGE_PAGE))
    return runs


def anonymous_huge_pages() -> int:
    """How many 2 MiB huge pages this process's anonymous memory is in."""
    with open("/proc/self/smaps_rollup") as handle:
        for line in handle:
            if line.startswith("AnonHugePages:"):
                return int(line.split()[1]) * 1024 // HUGE_PAGE
    return 0


def collapse_anonymous_memory() -> Collapsed:
    """Collapse this process's mostly present anonymous memory into huge pages, a run of ranges per call.

    A range already in a huge page costs the kernel almost nothing, so a second pass only pays
    for what was loaded since the first.
    """
    with open("/proc/self/maps") as handle:
        ranges = anonymous_ranges(handle.read())
    for first, last in ranges:
        for start, end in present_runs(first, last):
            if _libc.madvise(start, end - start, MADV_COLLAPSE) == 0:
                continue
            stop = STOPS.get(ctypes.get_errno())
            if stop is not None:
                return Collapsed(anonymous_huge_pages(), stop)
            # EAGAIN and the like: a range of this run is busy or unsuitable; the others may not be
    return Collapsed(anonymous_huge_pages(), None)


class Collapsing:
    """The first pass, in a thread while the master warms Django; :meth:`finish` ends it before the first fork."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.first: Collapsed | Exception | None = None
        self.thread = threading.Thread(target=self._first_pass, name="rqpool-huge-pages", daemon=True)
        self.thread.start()

    def _first_pass(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())  # signals stay with the main thread
        try:
            self.first = collapse_anonymous_memory()
        except Exception as exc:  # an optimization: whatever fails, the pool starts as without it
            self.first = exc

    def finish(self) -> Collapsed | None:
        """Wait for the first pass, collapse what was loaded since, and log what was done and its time."""
        finishing = time.perf_counter()
        self.thread.join()
        done = self.first
        try:
            if isinstance(done, Collapsed) and done.stopped is None:
                done = collapse_anonymous_memory()
        except Exception as exc:  # as in the first pass
            done = exc
        now = time.perf_counter()
        if not isinstance(done, Collapsed):
            log.info("huge pages: not used (%s)", done)
            return None
        if done.stopped is not None and not done.huge_pages:
            log.info("huge pages: not used (%s); each fork copies 4 KiB page tables", done.stopped)
            return done
        log.info(
            "huge pages: %d MiB of the master's memory in %d huge pages (%.3fs, %.3fs of it after the warming)%s; "
            "forks copy 1 page-table entry per 2 MiB",
            done.huge_pages * HUGE_PAGE >> 20,
            done.huge_pages,
            now - self.started,
            now - finishing,
            f", then stopped: {done.stopped}" if done.stopped else "",
        )
        return done


def start_huge_pages() -> Collapsing | None:
    """Start collapsing the master's memory unless the setting turns it off; before the warming."""
    if not getattr(settings, SETTING, True):
        log.info("huge pages are off (settings.%s): each fork copies 4 KiB page tables", SETTING)
        return None
    return Collapsing()
