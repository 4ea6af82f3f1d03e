"""``--hot-swap`` signals only a pool proven to own the pidfile (through the real ``manage.py rqpool``)."""

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
