"""Which ranges the master collapses into huge pages, and the collapse itself on this kernel."""

from __future__ import annotations

import ctypes
import mmap
import os
import platform
from collections.abc import Callable

import pytest

from django_rq_pool.master.huge_pages import (
    HUGE_PAGE,
    Collapsing,
    anonymous_ranges,
    collapse_anonymous_memory,
    present_runs,
)

MAPS = """\
00400000-00401000 r--p 00000000 08:01 1 /usr/bin/python3.11
01000000-01a00000 rw-p 00000000 00:00 0 [heap]
7f0000100000-7f0000500000 rw-p 00000000 00:00 0
7f0000600000-7f0000700000 rw-p 00000000 00:00 0
7f0000800000-7f0000c00000 rw-s 00000000 00:05 7 /dev/zero (deleted)
7f0001000000-7f0001400000 rw-p 00000000 08:01 2 /usr/lib/libfoo.so
7f0002000000-7f0002400000 r--p 00000000 00:00 0
7ffc00000000-7ffc00400000 rw-p 00000000 00:00 0 [stack]
"""


def test_only_private_writable_anonymous_memory_and_the_heap_in_whole_huge_pages():
    assert anonymous_ranges(MAPS) == [
        (0x01000000, 0x01A00000),  # the heap: already 2 MiB aligned
        (0x7F0000200000, 0x7F0000400000),  # 1 MiB in from the start, 1 MiB short of the end: the whole 2 MiB inside
    ]  # not: a mapping under 2 MiB, shared memory, a file, read-only memory, the stack


def kernel_collapses() -> bool:
    release = tuple(int(part) for part in platform.release().split(".")[:2])
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as handle:
            enabled = handle.read()
    except FileNotFoundError:
        return False
    return release >= (6, 1) and "[never]" not in enabled


def anon_huge_kib() -> int:
    with open("/proc/self/smaps_rollup") as handle:
        return int(handle.read().split("AnonHugePages:")[1].split()[0])


def in_a_forked_child(work: Callable[[], str]) -> list[str]:
    """Run ``work`` in a child of its own (the test process keeps its pages as they are); its words."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.write(write_fd, work().encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    try:
        return os.read(read_fd, 200).decode().split()
    finally:
        os.close(read_fd)
        os.waitpid(pid, 0)


@pytest.mark.skipif(not kernel_collapses(), reason="MADV_COLLAPSE needs Linux 6.1+ with transparent huge pages")
def test_the_collapse_maps_loaded_objects_with_huge_pages_in_a_forked_child():
    def work() -> str:
        loaded = [{f"k{i}": [i, str(i)] for i in range(50)} for _ in range(4000)]  # ~20 MB, all present
        before = anon_huge_kib()
        done = collapse_anonymous_memory()
        return f"{before} {anon_huge_kib()} {done.huge_pages} {done.stopped} {len(loaded)}"

    report = in_a_forked_child(work)
    before, after, made = int(report[0]), int(report[1]), int(report[2])
    assert report[3] == "None", report
    assert made >= 5 and after - before >= made * HUGE_PAGE // 1024 // 2, report


def test_ranges_are_collapsed_only_when_most_of_their_pages_are_present_and_adjacent_ones_in_one_run():
    memory = mmap.mmap(-1, 4 * HUGE_PAGE)
    try:
        start = ctypes.addressof(ctypes.c_char.from_buffer(memory))
        aligned = -(-start // HUGE_PAGE) * HUGE_PAGE
        offset = aligned - start
        memory[offset] = 1  # one page of 512
        assert present_runs(aligned, aligned + 3 * HUGE_PAGE) == []
        for page in range(offset, offset + HUGE_PAGE, 4096):
            memory[page] = 1
        assert present_runs(aligned, aligned + 3 * HUGE_PAGE) == [(aligned, aligned + HUGE_PAGE)]
        for page in range(offset + HUGE_PAGE, offset + 2 * HUGE_PAGE, 4096):
            memory[page] = 1
        assert present_runs(aligned, aligned + 3 * HUGE_PAGE) == [(aligned, aligned + 2 * HUGE_PAGE)]
    finally:
        del start, aligned
        memory.close()


@pytest.mark.skipif(not kernel_collapses(), reason="MADV_COLLAPSE needs Linux 6.1+ with transparent huge pages")
def test_what_is_loaded_while_the_thread_collapses_is_collapsed_before_the_fork():
    def work() -> str:
        before = [{f"k{i}": [i, str(i)] for i in range(50)} for _ in range(4000)]  # ~20 MB
        collapsing = Collapsing()
        during = [{f"w{i}": [i, str(i)] for i in range(50)} for _ in range(4000)]  # the warming's share
        done = collapsing.finish()
        assert done is not None
        return f"{done.huge_pages} {done.stopped} {anon_huge_kib()} {len(before) + len(during)}"

    report = in_a_forked_child(work)
    assert report[1] == "None", report
    assert int(report[0]) >= 12 and int(report[2]) == int(report[0]) * HUGE_PAGE // 1024, report  # both 20 MB loads
