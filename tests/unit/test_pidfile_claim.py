"""Claiming a pidfile: many real processes racing for the same stale file, exactly one wins."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from django_rq_pool.service.pidfile import PidFile, PidFileError, is_locked, live_owner, read_pid

from ..racing import Report, race

CLAIMERS = 12
TRIALS = 15


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _claimer(path: Path) -> Callable[[Report], None]:
    def claim(report: Report) -> None:
        """Claim, report W or L, hold the claim until every claimer has reported."""
        try:
            PidFile(path).write()
            verdict = b"W"
        except PidFileError:
            verdict = b"L"
        report(verdict)

    return claim


def test_many_claimers_of_one_stale_pidfile_exactly_one_wins(tmp_path):
    for trial in range(TRIALS):
        path = tmp_path / f"race-{trial}.pid"
        path.write_text(f"{dead_pid()}\n")
        verdicts = b"".join(race(_claimer(path), CLAIMERS, 1))
        assert len(verdicts) == CLAIMERS, verdicts
        assert verdicts.count(b"W") == 1, f"trial {trial}: {verdicts.count(b'W')} claimers won"


def test_a_locked_pidfile_is_a_live_pool_and_its_lock_dies_with_it(tmp_path):
    path = tmp_path / "p.pid"
    ready_r, ready_w = os.pipe()
    hold_r, hold_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(hold_w)
            os.close(ready_r)
            PidFile(path).write()
            grandchild = os.fork()  # a worker: it must not keep its master's lock
            if grandchild == 0:
                os.close(ready_w)
                os.read(hold_r, 1)  # EOF when the test closes its end
                os._exit(0)
            os.write(ready_w, str(grandchild).encode())
            os.read(hold_r, 1)
            status = 0
        finally:
            os._exit(status)
    worker = 0
    try:
        worker = int(os.read(ready_r, 32))
        assert is_locked(path) and live_owner(path) == pid
        with pytest.raises(PidFileError, match=f"holds pid {pid}, which is alive"):
            PidFile(path).write()
        os.kill(pid, 9)  # the master dies; its worker lives on
        os.waitpid(pid, 0)
        assert not is_locked(path) and live_owner(path) is None
        own = PidFile(path)
        own.write()
        assert read_pid(path) == os.getpid()
        own.release()
    finally:
        os.close(hold_w)
        for fd in (ready_r, ready_w, hold_r):
            os.close(fd)
        if worker:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(worker, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
