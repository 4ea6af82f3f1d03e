"""The hot-swap lock: real processes racing for one pidfile's swap lock, exactly one wins."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from django_rq_pool.service.swap_lock import SwapInProgress, SwapLock

from ..racing import Report, race

CONTENDERS = 12
TRIALS = 10
RECORD = 8  # b"W" or b"L", then a 7-digit pid: the winner's own, or the holder a loser was told of


def _contender(pidfile: Path) -> Callable[[Report], None]:
    def contend(report: Report) -> None:
        """Try the lock, report who holds it, hold it until every contender has reported."""
        lock = SwapLock(pidfile)
        try:
            lock.acquire()
            record = b"W%07d" % os.getpid()
        except SwapInProgress as exc:
            record = b"L%07d" % (exc.holder or 0)
        report(record)
        lock.release()

    return contend


def test_many_hot_swaps_of_one_pidfile_exactly_one_wins_and_losers_name_it(tmp_path):
    for trial in range(TRIALS):
        pidfile = tmp_path / f"race-{trial}.pid"
        records = race(_contender(pidfile), CONTENDERS, RECORD)
        assert len(records) == CONTENDERS, records
        winners = [r for r in records if r.startswith(b"W")]
        assert len(winners) == 1, f"trial {trial}: {len(winners)} hot swaps won"
        assert {r[1:] for r in records if r.startswith(b"L")} == {winners[0][1:]}, records
        assert not SwapLock(pidfile).path.exists()  # the winner removed it at release


def test_a_held_lock_refuses_even_its_holders_children_and_a_stale_one_is_taken(tmp_path):
    pidfile = tmp_path / "p.pid"
    stale = SwapLock(pidfile)
    stale.path.write_text("999999\n")  # left by a hot swap that was SIGKILLed: a file nobody locks
    lock = SwapLock(pidfile)
    lock.acquire()
    assert lock.path.read_text() == f"{os.getpid()}\n"
    pid = os.fork()
    if pid == 0:  # a worker of the swapping master: no copy of the lock, and refused with the holder's pid
        status = 1
        try:
            SwapLock(pidfile).acquire()
        except SwapInProgress as exc:
            status = 0 if exc.holder == os.getppid() else 2
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with pytest.raises(SwapInProgress, match=f"pool {os.getpid()} is already taking over pidfile {pidfile}"):
        SwapLock(pidfile).acquire()
    lock.release()
    assert not lock.path.exists()
    again = SwapLock(pidfile)
    again.acquire()
    again.release()
