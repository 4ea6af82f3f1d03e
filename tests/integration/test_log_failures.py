"""Log files that cannot be (re)opened, and the standard streams of a daemon, through the real ``manage.py rqpool``."""

from __future__ import annotations

import contextlib
import os
import signal

import psutil

from ..harness import done_records, wait_for
from .test_operations import daemon_pid, gone, read, wait_text


def test_master_keeps_running_when_its_log_file_cannot_be_reopened(pool_factory, queue, redis_client, tmp_path):
    logs = tmp_path / "logs1"
    pool = pool_factory("foo: 1\n", args=("--log-file", f"{logs}/{{queues}}.log")).start()
    pool.wait_workers(1)
    wait_text(logs / "master.log", "spawned worker")
    workers = {p.pid for p in pool.worker_processes()}
    rotated = tmp_path / "logs1.rotated"
    logs.rename(rotated)
    logs.write_text("logrotate left a file where the directory was\n")

    pool.signal(signal.SIGHUP)
    wait_text(rotated / "master.log", "HUP: reloaded")  # the old file is kept and still written
    text = read(rotated / "master.log")
    assert f"cannot open log file {logs}/master.log" in text and "Traceback" not in text
    assert "cannot open log file" in pool.log()  # and stderr says so too
    assert pool.process is not None and pool.process.poll() is None
    assert {p.pid for p in pool.worker_processes()} == workers
    queue("foo").enqueue("testapp.jobs.record", "after-failed-reopen")
    wait_for(lambda: any(r["token"] == "after-failed-reopen" for r in done_records(redis_client)), message="job done")
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0


def test_worker_keeps_its_job_when_its_log_file_cannot_be_reopened(pool_factory, queue, redis_client, tmp_path):
    logs = tmp_path / "logs2"
    pool = pool_factory('"foo,bar": 1\n', args=("--log-file", f"{logs}/{{queues}}/w.log")).start()
    pool.wait_workers(1)
    worker_dir = logs / "foo,bar"
    wait_text(worker_dir / "w.log", "Listening on")
    (worker,) = pool.worker_processes()
    rotated = logs / "rotated"
    worker_dir.rename(rotated)
    worker_dir.write_text("a file where the directory was\n")

    pool.signal(signal.SIGHUP)
    wait_text(logs / "master" / "w.log", "HUP: reloaded")
    job = queue("foo").enqueue("testapp.jobs.log_warning", "after-failed-reopen")
    wait_for(lambda: any(r["token"] == "after-failed-reopen" for r in done_records(redis_client)), message="job done")
    wait_for(lambda: job.get_status(refresh=True).value == "finished", message="job finished")
    wait_text(rotated / "w.log", "job log line after-failed-reopen")  # the worker kept its old file
    assert f"cannot open log file {worker_dir}/w.log" in read(rotated / "w.log")
    assert [p.pid for p in pool.worker_processes()] == [worker.pid]  # the same worker, alive
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0


def test_unusable_log_file_path_is_one_line_and_exit_2(pool_factory, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    result = pool_factory("foo: 1\n", args=("--log-file", str(blocker / "rqpool.log"))).run()
    assert result.returncode == 2, result.stdout
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stdout, result.stdout
    assert lines[0].startswith("rqpool: cannot open --log-file") and "Not a directory" in lines[0], lines


def test_daemon_hup_points_stdout_and_stderr_at_the_reopened_log_file(pool_factory, queue, redis_client, tmp_path):
    pidfile, log_file = tmp_path / "d.pid", tmp_path / "rqpool.log"
    pool = pool_factory("foo: 1\n", args=("--daemon", "--pidfile", str(pidfile), "--log-file", str(log_file)))
    assert pool.start().wait_exit(60) == 0, pool.log()
    master = daemon_pid(pidfile)
    tree = [psutil.Process(master)]
    try:
        tree += psutil.Process(master).children(recursive=True)
        std_streams = lambda pid: {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in (1, 2)}  # noqa: E731
        assert std_streams(master) == {str(log_file)}
        log_file.rename(tmp_path / "rqpool.log.1")
        os.kill(master, signal.SIGHUP)
        wait_text(log_file, "HUP: reloaded")
        wait_for(lambda: std_streams(master) == {str(log_file)}, message="the master's fds 1 and 2 on the new file")
        queue("foo").enqueue("testapp.jobs.log_warning", "after-rotate")  # the worker reopens at its next line
        wait_text(log_file, "job log line after-rotate")
        (worker,) = [p for p in psutil.Process(master).children() if p.cmdline()[0].startswith("rq:worker:")]
        assert std_streams(worker.pid) == {str(log_file)}
        os.kill(master, signal.SIGQUIT)
        wait_for(lambda: gone(tree[0]), message="the daemon to exit")
    finally:  # a daemon is not the test's child: end it and what it forked, by PID
        for proc in tree:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        wait_for(lambda: all(gone(proc) for proc in tree), 10, "the daemon's processes to end")
