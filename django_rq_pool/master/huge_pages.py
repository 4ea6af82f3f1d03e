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

On by default where the kernel allows it; ``settings.RQ_POOL_HUGE_PAGES = False`` turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import time
from typing import NamedTuple

from django.conf import settings

log = logging.getLogger(__name__)
SETTING = "RQ_POOL_HUGE_PAGES"
MADV_COLLAPSE = 25
HUGE_PAGE = 2 << 20
PAGE = 4096
MIN_PRESENT = 0.5  # a range with fewer of its pages present is left alone: collapsing it would fill them

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


def mostly_present(address: int) -> bool:
    """Whether at least MIN_PRESENT of the 4 KiB pages of the 2 MiB range at ``address`` are in memory."""
    pages = HUGE_PAGE // PAGE
    vector = ctypes.create_string_buffer(pages)
    if _libc.mincore(address, HUGE_PAGE, vector) != 0:
        return False
    return sum(byte & 1 for byte in vector.raw) >= pages * MIN_PRESENT


def collapse_anonymous_memory() -> Collapsed:
    """Collapse this process's mostly present anonymous memory into huge pages, 2 MiB at a time."""
    with open("/proc/self/maps") as handle:
        ranges = anonymous_ranges(handle.read())
    made = 0
    for first, last in ranges:
        for address in range(first, last, HUGE_PAGE):
            if not mostly_present(address):
                continue
            if _libc.madvise(address, HUGE_PAGE, MADV_COLLAPSE) == 0:
                made += 1
                continue
            code = ctypes.get_errno()
            if code == errno.EINVAL:
                return Collapsed(made, "the kernel does not collapse (Linux 6.1+ with transparent huge pages needed)")
            if code == errno.ENOMEM:
                return Collapsed(made, "no free huge page")
            # EAGAIN and the like: this range is busy or unsuitable; the others may not be
    return Collapsed(made, None)


def use_huge_pages() -> None:
    """Collapse the master's memory unless the setting turns it off; logs what it did and its time."""
    if not getattr(settings, SETTING, True):
        log.info("huge pages are off (settings.%s): each fork copies 4 KiB page tables", SETTING)
        return
    started = time.perf_counter()
    try:
        done = collapse_anonymous_memory()
    except OSError as exc:
        log.info("huge pages: not used (%s)", exc)
        return
    spent = time.perf_counter() - started
    mib = done.huge_pages * HUGE_PAGE >> 20
    if done.stopped is not None and not done.huge_pages:
        log.info("huge pages: not used (%s); each fork copies 4 KiB page tables", done.stopped)
        return
    log.info(
        "huge pages: %d MiB of the master's memory in %d huge pages (%.3fs)%s; forks copy 1 page-table entry per 2 MiB",
        mib,
        done.huge_pages,
        spent,
        f", then stopped: {done.stopped}" if done.stopped else "",
    )
