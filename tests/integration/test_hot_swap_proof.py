"""``--hot-swap`` signals only a pool proven to own the pidfile, and only one hot swap of a pidfile runs at a
time (through the real ``manage.py rqpool``)."""

from __future__ import annotations

import signal
import subprocess

import pytest

from ..harness import wait_for


@pytest.fixture
def unrelated_process():
    """A process that is no pool, ended by its PID whatever the test does."""
    proc = subprocess.Popen(["sleep", "1000"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(10)


def test_hot_swap_leaves_an_unrelated_process_named_by_a_stale_pidfile_alone(pool_factory, tmp_path, unrelated_process):
    pidfile = tmp_path / "pool.pid"
    pidfile.write_text(f"{unrelated_process.pid}\n")  # a stale file whose pid was reused
    pool = pool_factory("foo: 1\n", args=("--pidfile", str(pidfile), "--hot-swap")).start()
    pool.wait_workers(1)
    wait_for(lambda: pidfile.read_text().strip() == str(pool.pid), message="the new pool in the pidfile")
    pool.wait_log("all 1 workers are listening")  # when a hot swap would signal the old pool
    assert unrelated_process.poll() is None, "the unrelated process was signalled"
    assert "no running pool owns" in pool.log()
    assert "sent QUIT" not in pool.log()
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert not pidfile.exists()
    assert unrelated_process.poll() is None


def test_two_hot_swaps_at_once_exactly_one_takes_over(pool_factory, tmp_path):
    """Both started together against a running pool: one takes over, the other exits 4 and starts nothing."""
    pidfile = tmp_path / "pool.pid"
    old = pool_factory("foo: 1\n", args=("--pidfile", str(pidfile))).start()
    old.wait_workers(1)
    slow = {"TEST_PREFORK_SLEEP": "3"}  # the winner's workers listen (and its swap ends) 3 s after its lock
    swaps = [pool_factory("foo: 1\n", args=("--pidfile", str(pidfile), "--hot-swap"), env=slow) for _ in range(2)]
    for swap in swaps:
        swap.start()
    loser = wait_for(
        lambda: next((swap for swap in swaps if swap.process.poll() is not None), None), 30, "one hot swap to exit"
    )
    (winner,) = [swap for swap in swaps if swap is not loser]
    assert loser.wait_exit() == 4, loser.log()[-3000:]
    expected = f"hot swap refused: pool {winner.pid} is already taking over pidfile {pidfile}; this pool starts nothing"
    assert expected in loser.log()
    assert "spawned worker" not in loser.log() and "sent QUIT" not in loser.log()
    winner.wait_log(f"sent QUIT to the old pool {old.pid}")
    assert old.wait_exit(30) == 0
    assert "all workers stopped (graceful stop)" in old.log()
    winner.wait_workers(1)
    assert pidfile.read_text().strip() == str(winner.pid)
    assert not (tmp_path / ".pool.pid.swap").exists()  # released once the winner owned the pidfile
    wait_for(lambda: not loser.processes() and not old.processes(), message="nothing left of the loser or the old pool")
    winner.signal(signal.SIGQUIT)
    assert winner.wait_exit() == 0
    assert not pidfile.exists()
    wait_for(lambda: not winner.processes(), message="nothing left of the winner")
