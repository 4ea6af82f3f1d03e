"""The master's memory in huge pages before it forks: workers inherit them, jobs run as before."""

from __future__ import annotations

import re
import signal

import pytest

from ..harness import done_records
from ..unit.test_huge_pages import kernel_collapses
from .lifecycle import assert_nothing_left, wait_status


def anon_huge_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as handle:
        return int(handle.read().split("AnonHugePages:")[1].split()[0])


def run_one_job(pool_factory, queue, redis_client, env: dict[str, str]) -> tuple[int, str]:
    """AnonHugePages of the pool's worker (KiB), and the master's log."""
    pool = pool_factory("foo: 1\n", env=env).start()
    pool.wait_workers(1)
    (worker,) = pool.worker_processes()
    huge = anon_huge_kib(worker.pid)
    job = queue("foo").enqueue("testapp.jobs.record", "after the collapse")
    wait_status(job, "finished")
    assert [r["token"] for r in done_records(redis_client)] == ["after the collapse"]
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)
    return huge, pool.log()


@pytest.mark.skipif(not kernel_collapses(), reason="MADV_COLLAPSE needs Linux 6.1+ with transparent huge pages")
def test_workers_inherit_the_masters_huge_pages(pool_factory, queue, redis_client):
    huge, log = run_one_job(pool_factory, queue, redis_client, {"TEST_STATE_MB": "40"})
    found = re.search(
        r"huge pages: (\d+) MiB of the master's memory in (\d+) huge pages \([\d.]+s, [\d.]+s of it after the warming",
        log,
    )
    assert found, log
    assert int(found.group(2)) >= 10 and huge >= 8 * 1024, (found.group(0), huge)  # the state no worker writes to


def test_huge_pages_can_be_turned_off(pool_factory, queue, redis_client):
    huge, log = run_one_job(pool_factory, queue, redis_client, {"TEST_RQ_POOL_HUGE_PAGES": "0", "TEST_STATE_MB": "40"})
    assert "huge pages are off (settings.RQ_POOL_HUGE_PAGES)" in log
    assert huge == 0
