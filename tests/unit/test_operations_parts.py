"""The pure parts of operations: pidfile rules, $RQ_POOL_WORKERS, log patterns, sd_notify datagrams."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import tempfile
from types import SimpleNamespace

import pytest

from django_rq_pool.common.listening_pipe import announce, announced
from django_rq_pool.common.log_files import LogFiles, ReopenableFileHandler, expand
from django_rq_pool.config.env_counts import apply_counts, parse_counts
from django_rq_pool.config.loader import ConfigError
from django_rq_pool.config.plan import PoolPlan, QueueGroup, WorkerOptions
from django_rq_pool.service.daemon import Readiness
from django_rq_pool.service.pidfile import PidFile, is_alive, live_owner, read_pid
from django_rq_pool.service.systemd import Notifier


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# -- pidfile ---------------------------------------------------------------------------------


def test_pidfile_write_creates_and_release_removes(tmp_path):
    pidfile = PidFile(tmp_path / "sub" / "p.pid")
    pidfile.write()
    assert read_pid(pidfile.path) == os.getpid()
    assert [p.name for p in pidfile.path.parent.iterdir()] == ["p.pid"]  # no temp file left behind
    pidfile.release()
    assert not pidfile.path.exists()


def test_pidfile_of_a_live_process_that_is_no_pool_is_stale(tmp_path):
    path = tmp_path / "p.pid"
    path.write_text("1\n")  # init: alive (EPERM for an unprivileged user), but it holds no pool's lock
    assert is_alive(1)
    assert live_owner(path) is None
    PidFile(path).check()
    PidFile(path).write()
    assert read_pid(path) == os.getpid()


@pytest.mark.parametrize("content", ["", "garbage\n", "-5\n", "0\n"])
def test_pidfile_replaces_invalid_content(tmp_path, content):
    path = tmp_path / "p.pid"
    path.write_text(content)
    PidFile(path).write()
    assert read_pid(path) == os.getpid()


def test_pidfile_replaces_stale_and_our_own_pid(tmp_path):
    path = tmp_path / "p.pid"
    path.write_text(f"{dead_pid()}\n")
    assert live_owner(path) is None
    PidFile(path).write()
    assert read_pid(path) == os.getpid()
    assert live_owner(path) is None  # our own pid (a container's PID 1 restarted) is not another pool


def test_pidfile_never_follows_a_planted_symlink(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("1\n")
    path = tmp_path / "p.pid"
    path.symlink_to(victim)
    assert read_pid(path) is None  # not read through the link either
    PidFile(path).write()
    assert not path.is_symlink() and read_pid(path) == os.getpid()
    assert victim.read_text() == "1\n"


def test_pidfile_release_leaves_a_file_that_is_no_longer_ours(tmp_path):
    pidfile = PidFile(tmp_path / "p.pid")
    pidfile.write()
    pidfile.path.write_text("1\n")  # a hot-swapped successor took it
    pidfile.release()
    assert pidfile.path.read_text() == "1\n"


# -- $RQ_POOL_WORKERS -----------------------------------------------------------------------------


def test_parse_counts_and_apply():
    counts = parse_counts(" foo=2; foo, bar ,baz = 4 ;; ")
    assert counts == {("foo",): 2, ("foo", "bar", "baz"): 4}
    options = WorkerOptions(max_jobs=5)
    plan = PoolPlan((QueueGroup(("foo",), 1, options), QueueGroup(("bar",), 3)), "rq-pool.yml")
    result = apply_counts(plan, counts)
    assert [(g.name, g.count, g.options) for g in result.groups] == [
        ("foo", 2, options),
        ("bar", 3, WorkerOptions()),
        ("foo,bar,baz", 4, WorkerOptions()),
    ]
    assert result.source == "rq-pool.yml + $RQ_POOL_WORKERS"
    assert apply_counts(plan, {}) is plan


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("foo", "each entry must be"),
        ("=3", "each entry must be"),
        ("foo=-1", "non-negative integer"),
        ("foo=1.5", "non-negative integer"),
        ("foo=", "non-negative integer"),
        ("foo,,bar=1", "empty queue name"),
        ("foo bar=1", "not a valid queue name"),
        ("foo=1;foo=2", "given twice"),
        ("foo,foo=1", "named twice"),
    ],
)
def test_parse_counts_errors_name_the_variable(text, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_counts(text)
    assert str(info.value).startswith("$RQ_POOL_WORKERS")


# -- log file patterns ----------------------------------------------------------------------------


def test_expand_pattern_and_errors():
    assert expand("/l/{queues}-{index}-{pid}.log", "foo,bar", 2, 77) == "/l/foo,bar-2-77.log"
    with pytest.raises(ValueError, match=r"unknown placeholder \{queue\}"):
        expand("{queue}.log", "foo", 0, 1)
    with pytest.raises(ValueError, match="log file pattern"):
        LogFiles("{queues")


def test_handler_switch_reopens_after_rename(tmp_path):
    path = tmp_path / "a.log"
    handler = ReopenableFileHandler(str(path))
    handler.stream.write("one\n")
    handler.flush()
    path.rename(tmp_path / "a.log.1")
    handler.switch(str(path))
    handler.stream.write("two\n")
    handler.flush()
    path.rename(tmp_path / "a.log.2")
    handler.request_reopen()  # what a worker's HUP handler does: the next record reopens
    assert not path.exists()
    handler.emit(logging.LogRecord("x", logging.INFO, __file__, 1, "three", None, None))
    handler.close()
    assert (tmp_path / "a.log.1").read_text() == "one\n"
    assert (tmp_path / "a.log.2").read_text() == "two\n"
    assert path.read_text() == "three\n"


# -- sd_notify and the daemon's pipe ------------------------------------------------------------


def test_notifier_sends_status_watchdog_and_abstract_addresses():
    directory = tempfile.mkdtemp(dir="/tmp")
    path = os.path.join(directory, "n")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(path)
        listener.settimeout(5)
        arbiter = SimpleNamespace(state="running", status_line=lambda: "2/2 workers")
        notifier = Notifier(path, watchdog_usec=1)
        notifier.on_status(arbiter, "READY=1")
        assert listener.recv(1024).decode() == "READY=1\nSTATUS=running: 2/2 workers"
        notifier.on_tick(arbiter)
        assert listener.recv(1024).decode() == "WATCHDOG=1"  # status unchanged: not repeated
    os.unlink(path)
    os.rmdir(directory)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        name = f"rqpool-test-{os.getpid()}"
        listener.bind("\0" + name)
        listener.settimeout(5)
        Notifier("@" + name).send("STOPPING=1")
        assert listener.recv(1024) == b"STOPPING=1"


def test_notifier_from_environment_consumes_variables(monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", "/nonexistent/socket")
    monkeypatch.setenv("WATCHDOG_USEC", "3000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    notifier = Notifier.from_environment()
    assert notifier is not None and notifier.watchdog_interval == 1.5
    assert "NOTIFY_SOCKET" not in os.environ and "WATCHDOG_USEC" not in os.environ
    notifier.send("READY=1")  # nobody listens: logged once, never raised
    monkeypatch.setenv("NOTIFY_SOCKET", "/x")
    monkeypatch.setenv("WATCHDOG_USEC", "3000000")
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert Notifier.from_environment().watchdog_interval is None  # the watchdog is for another process


def test_readiness_reports_once():
    read_fd, write_fd = os.pipe()
    readiness = Readiness(write_fd)
    readiness.failed(2, "bad\nthing")
    readiness.ready()
    assert not readiness.pending
    assert os.read(read_fd, 100) == b"FAILED 2 bad thing\n"
    assert os.read(read_fd, 100) == b""
    os.close(read_fd)


def test_listening_announcements_are_read_whole_and_in_order():
    read_fd, write_fd = os.pipe2(os.O_NONBLOCK)
    assert announced(read_fd) == []
    for _ in range(3):
        announce(os.dup(write_fd))  # each worker writes once on its own copy, then closes it
    assert announced(read_fd) == [os.getpid()] * 3
    assert announced(read_fd) == []
    os.close(write_fd)
    assert announced(read_fd) == []  # no writer left: end of file, not an error
    os.close(read_fd)
