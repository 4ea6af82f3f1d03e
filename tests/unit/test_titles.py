"""Titles taken inside fork(): a child shows the title chosen for it before it runs any code of its own."""

from __future__ import annotations

import os

from django_rq_pool.common import titles


def title_in_child() -> str:
    """Fork a child that reports its title as the first thing it does."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            with open("/proc/self/cmdline", "rb") as handle:
                os.write(write_fd, handle.read().split(b"\0")[0])
        finally:
            os._exit(0)
    os.close(write_fd)
    os.waitpid(pid, 0)
    with os.fdopen(read_fd, "rb") as handle:
        return handle.read().decode()


def test_children_take_the_fork_title_and_forking_as_applies_only_inside_its_block():
    titles.install("shop")
    assert title_in_child() == f"rqpool-child[shop]: starting (forked by master {os.getpid()})"
    with titles.forking_as(titles.titled("scheduler", "[foo]")):
        assert title_in_child() == "rqpool-scheduler[shop]: [foo]"
    assert title_in_child().startswith("rqpool-child[shop]: starting")
    titles.forks_become("")  # no title chosen: a child keeps its parent's
    assert not title_in_child().startswith("rqpool-")
