"""Operations through the real ``manage.py rqpool`` (issue 4): log files and logrotate, pidfile,
daemon mode, safe reload, systemd notifications, environment variables, hot swap and --check."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest

from ..harness import MANAGE, TEST_PROJECT, done_records, wait_for
from .lifecycle import SLOW, wait_started, wait_status

LOG_JOB = "testapp.jobs.log_warning"


def master_title(pid: int) -> str:
    return psutil.Process(pid).cmdline()[0]


def read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def wait_text(path: Path, text: str, timeout: float = 20) -> None:
    try:
        wait_for(lambda: text in read(path), timeout, f"{text!r} in {path}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; {path} has:\n{read(path)[-3000:]}") from None


def registered(redis_client, master_pid: int, queue: str | None = None) -> list[str]:
    key = f"rq:workers:{queue}" if queue else "rq:workers"
    return [m.decode() for m in redis_client.smembers(key) if f".{master_pid}." in m.decode()]


# -- 1. logging ----------------------------------------------------------------------------


def test_log_file_per_worker_pattern_and_logrotate_on_hup(pool_factory, queue, redis_client, tmp_path):
    logs = tmp_path / "logs"
    pool = pool_factory("foo: 1\nbar: 1\n", args=("--log-file", f"{logs}/{{queues}}-{{index}}.log")).start()
    pool.wait_workers(2)
    master_log, foo_log, bar_log = logs / "master-master.log", logs / "foo-0.log", logs / "bar-0.log"
    wait_text(master_log, "spawned worker")
    foo_pid = next(p.pid for p in pool.worker_processes() if p.cmdline()[0].endswith("Listening on foo"))
    wait_text(foo_log, f"[{foo_pid}] [foo] rq.worker: Worker")
    wait_text(bar_log, "[bar] rq.worker: Worker")
    queue("foo").enqueue(LOG_JOB, "before-rotate")
    wait_text(foo_log, "job log line before-rotate")  # a job's own logger lands in its worker's file
    assert "before-rotate" not in read(bar_log) + read(master_log)
    assert "Worker" not in read(master_log).replace("spawned worker", "")  # nothing of workers on stderr
    assert "rq.worker" not in pool.log()

    for path in (master_log, foo_log, bar_log):
        path.rename(path.with_suffix(".log.1"))  # what logrotate does
    pool.signal(signal.SIGHUP)
    wait_text(master_log, "HUP: reloaded")
    queue("foo").enqueue(LOG_JOB, "after-rotate")
    wait_text(foo_log, "job log line after-rotate")
    assert "after-rotate" not in read(logs / "foo-0.log.1")
    assert "before-rotate" in read(logs / "foo-0.log.1")
    assert pool.wait_workers(2)  # HUP reopened the files and killed no worker
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    wait_text(master_log, "master exiting with status 0")


def test_log_file_single_file_gets_master_and_workers(pool_factory, queue, redis_client, tmp_path):
    log_file = tmp_path / "all.log"
    pool = pool_factory("foo: 2\n", args=("--log-file", str(log_file))).start()
    pool.wait_workers(2)
    queue("foo").enqueue(LOG_JOB, "one-file")
    wait_text(log_file, "job log line one-file")
    text = read(log_file)
    assert "[master] django_rq_pool.master.spawner: spawned worker" in text
    for proc in pool.worker_processes():
        assert f"[{proc.pid}] [foo] rq.worker:" in text
    assert "spawned worker" not in pool.log()


def test_bad_log_pattern_is_a_clear_error(pool_factory, tmp_path):
    result = pool_factory("foo: 1\n", args=("--log-file", str(tmp_path / "{queue}.log"))).run()
    assert result.returncode == 2
    assert "unknown placeholder {queue}" in result.stdout
    assert "Traceback" not in result.stdout


# -- 2. pidfile and daemon -------------------------------------------------------------------


def test_pidfile_written_refuses_a_live_pool_and_is_removed_at_exit(pool_factory, tmp_path):
    pidfile = tmp_path / "run" / "rqpool.pid"
    first = pool_factory("foo: 1\n", args=("--pidfile", str(pidfile))).start()
    first.wait_workers(1)
    assert pidfile.read_text().strip() == str(first.pid)
    second = pool_factory("foo: 1\n", args=("--pidfile", str(pidfile))).run()
    assert second.returncode == 4
    assert f"holds pid {first.pid}, which is alive" in second.stdout
    assert pidfile.read_text().strip() == str(first.pid)
    first.signal(signal.SIGQUIT)
    assert first.wait_exit() == 0
    assert not pidfile.exists()


def test_pidfile_stale_and_planted_symlink_are_replaced(pool_factory, tmp_path):
    pidfile = tmp_path / "rqpool.pid"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    pidfile.write_text(f"{dead.pid}\n")
    pool = pool_factory("foo: 1\n", args=("--pidfile", str(pidfile))).start()
    pool.wait_workers(1)
    assert pidfile.read_text().strip() == str(pool.pid)
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0

    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    pidfile.symlink_to(victim)
    pool = pool_factory("foo: 1\n", args=("--pidfile", str(pidfile))).start()
    pool.wait_workers(1)
    assert not pidfile.is_symlink() and pidfile.read_text().strip() == str(pool.pid)
    assert victim.read_text() == "precious\n"
    pidfile.write_text("1\n")  # someone else's pid now: the pool must leave the file alone
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert pidfile.read_text() == "1\n"


def daemon_pid(pidfile: Path) -> int:
    return int(pidfile.read_text().strip())


def test_daemon_exits_0_once_workers_listen_and_stops_cleanly(pool_factory, redis_client, tmp_path):
    pidfile, log_file = tmp_path / "d.pid", tmp_path / "d-{pid}.log"
    pool = pool_factory("foo: 1\nbar: 1\n", args=("--daemon", "--pidfile", str(pidfile), "--log-file", str(log_file)))
    pool.start()
    assert pool.wait_exit(60) == 0, pool.log()
    master = daemon_pid(pidfile)
    assert f"daemon running (pid {master})" in pool.log()
    assert len(registered(redis_client, master)) == 2  # up means registered, at the moment the shell returns
    proc = psutil.Process(master)
    assert proc.ppid() != pool.pid  # double fork: the starting process is not its parent
    assert os.getsid(master) not in (pool.pid, os.getsid(0), master)  # own session, not its leader
    assert os.readlink(f"/proc/{master}/fd/0") == "/dev/null"
    daemon_log = tmp_path / f"d-{master}.log"
    wait_text(daemon_log, "all 2 workers are listening")
    os.kill(master, signal.SIGQUIT)
    wait_for(lambda: not psutil.pid_exists(master) or psutil.Process(master).status() == psutil.STATUS_ZOMBIE)
    wait_text(daemon_log, "master exiting with status 0")
    assert not pidfile.exists()


def gone(proc: psutil.Process) -> bool:
    """Exited: reaped, or a zombie whose parent (init, for a daemon) has not reaped it yet."""
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_daemon_reports_why_it_failed(pool_factory, tmp_path):
    log_file = tmp_path / "fail.log"
    result = pool_factory(
        "foo: 1\n", args=("--daemon", "--log-file", str(log_file)), env={"TEST_HOOKS": "setup-raises"}
    )
    result = result.run()
    assert result.returncode == 1
    assert "the daemon failed to start: setup hook failed" in result.stdout
    assert "RuntimeError: setup hook failed on purpose" in read(log_file)

    pidfile = tmp_path / "looping.pid"
    looping = pool_factory(
        "foo: 1\n",
        args=("--daemon", "--log-file", str(log_file), "--ready-timeout", "3", "--pidfile", str(pidfile)),
        env={"TEST_HOOKS": "prefork-raises"},
    ).run()
    try:
        assert looping.returncode == 1
        expected = f"not ready after 3s (still starting or crash-looping); it keeps running, see {log_file}"
        assert expected in looping.stdout
    finally:  # the daemon keeps running by design: end it and everything it forked, by PID
        daemon = psutil.Process(int(pidfile.read_text()))
        tree = [daemon, *daemon.children(recursive=True)]
        for proc in tree:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        wait_for(lambda: all(gone(proc) for proc in tree), 10, "the looping daemon's processes to end")

    bad = pool_factory("foo: [1\n", args=("--daemon", "--log-file", str(log_file))).run()
    assert bad.returncode == 2  # checked before detaching: the terminal sees it
    assert "configuration error" in bad.stdout and "YAML syntax error" in bad.stdout


# -- 3. safe reload ------------------------------------------------------------------------------

MALFORMED = [
    ("foo: [1\n", "YAML syntax error", ":2"),
    ("- foo\n- bar\n", "the top level must be a mapping", ""),
    ("foo: 1\nbar: -2\n", "worker count must be a non-negative integer", ":2: key 'bar'"),
    ("foo:\n  count: 1\n  colour: red\n", "unknown option 'colour'", ":3: key 'foo'"),
    ("foo: 1\nnope: 1\n", "queue 'nope' is not in settings.RQ_QUEUES", ":2: key 'nope'"),
    ("foo: 1\n'bar,elsewhere': 1\n", "use different Redis connections", ":2: key 'bar,elsewhere'"),
    ("", "the top level must be a mapping of queue lists to counts, got empty", ""),
    (None, "file not found", ""),
]


def test_hup_with_malformed_file_keeps_plan_and_workers(pool_factory):
    pool = pool_factory("foo: 1\nbar: 1\n").start()
    pool.wait_workers(2)
    pids = sorted(p.pid for p in pool.worker_processes())
    for number, (text, problem, where) in enumerate(MALFORMED, 1):
        if text is None:
            pool.config_path.unlink()
        else:
            pool.write_config(text)
        pool.signal(signal.SIGHUP)
        wait_for(lambda n=number: pool.log().count("HUP: reload failed") == n, message=f"reload failure {number}")
        line = [x for x in pool.log().splitlines() if "HUP: reload failed" in x][-1]
        assert str(pool.config_path) + where in line and problem in line, line
        wait_for(lambda: "last reload failed" in master_title(pool.pid), message="title shows the failure")
        assert sorted(p.pid for p in pool.worker_processes()) == pids
    pool.write_config("foo: 1\nbar: 1\n")
    pool.signal(signal.SIGHUP)
    pool.wait_log("HUP: reloaded 2 workers")
    wait_for(lambda: "last reload failed" not in master_title(pool.pid), message="title cleared")
    assert sorted(p.pid for p in pool.worker_processes()) == pids


# -- 4. systemd ----------------------------------------------------------------------------------


class NotifyListener:
    """The systemd side: a datagram socket collecting every sd_notify message."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="rqn", dir="/tmp")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def collect(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except (TimeoutError, BlockingIOError):
                return self.messages

    def wait(self, predicate, what: str, timeout: float = 20) -> str:
        def found() -> str | None:
            return next((m for m in self.collect() if predicate(m)), None)

        return wait_for(found, timeout, what)

    def close(self) -> None:
        self.sock.close()
        os.unlink(self.path)
        os.rmdir(self.dir)


@pytest.fixture
def notify_listener():
    listener = NotifyListener()
    yield listener
    listener.close()


def test_systemd_ready_reloading_status_watchdog_stopping(pool_factory, redis_client, notify_listener):
    env = {"NOTIFY_SOCKET": notify_listener.path, "WATCHDOG_USEC": "400000"}
    pool = pool_factory("foo: 2\n", env=env).start()
    ready = notify_listener.wait(lambda m: "READY=1" in m, "READY=1")
    assert "STATUS=running: 2/2 workers" in ready
    assert len(registered(redis_client, pool.pid)) == 2  # READY=1 only once they listen
    first = len(notify_listener.messages)
    wait_for(lambda: sum("WATCHDOG=1" in m for m in notify_listener.collect()[first:]) >= 3, message="watchdogs")

    pool.write_config("foo: [\n")
    pool.signal(signal.SIGHUP)
    notify_listener.wait(lambda m: m.startswith("RELOADING=1"), "RELOADING=1")
    notify_listener.wait(lambda m: "last reload failed" in m and "READY=1" in m, "READY=1 after the failed reload")
    mark = len(notify_listener.messages)
    pool.write_config("foo: 1\n")
    pool.signal(signal.SIGHUP)
    wait_for(
        lambda: any("READY=1" in m and "1/1 workers" in m for m in notify_listener.collect()[mark:]),
        message="READY=1 after the good reload",
    )
    after = notify_listener.messages[mark:]
    reloading = next(i for i, m in enumerate(after) if m.startswith("RELOADING=1"))
    assert not any("last reload failed" in m for m in after[reloading + 1 :]), after
    pool.signal(signal.SIGTERM)
    notify_listener.wait(lambda m: m.startswith("STOPPING=1"), "STOPPING=1")
    assert pool.wait_exit() == 0
    assert not any("NOTIFY_SOCKET" in p.environ() for p in pool.processes())


def test_hup_during_a_graceful_stop_reopens_logs_but_neither_reloads_nor_says_running(
    pool_factory, queue, redis_client, notify_listener
):
    pool = pool_factory("foo: 1\n", env={"NOTIFY_SOCKET": notify_listener.path}).start()
    notify_listener.wait(lambda m: "READY=1" in m, "READY=1")
    job = queue("foo").enqueue(SLOW, "during-stop", 3)
    wait_started(redis_client)
    pool.signal(signal.SIGQUIT)
    notify_listener.wait(lambda m: m.startswith("STOPPING=1"), "STOPPING=1")
    mark = len(notify_listener.messages)
    pool.signal(signal.SIGHUP)
    pool.wait_log("HUP during a stop: log files reopened; no reload")
    assert ": stopping: " in psutil.Process(pool.pid).cmdline()[0]
    wait_status(job, "finished")
    assert pool.wait_exit() == 0
    assert not any("RELOADING=1" in m or "STATUS=running" in m for m in notify_listener.collect()[mark:])


# -- 5. environment (Procfile, containers) ------------------------------------------------------


def check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(MANAGE), "rqpool", *args],
        cwd=TEST_PROJECT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_procfile_mode_config_counts_and_term_from_environment(pool_factory, tmp_path):
    config = tmp_path / "pool.yml"
    config.write_text("foo: 1\nbar:\n  count: 1\n  max_jobs: 5\n")
    env = {"RQ_POOL_CONFIG": str(config), "RQ_POOL_WORKERS": " foo=2; high,low=1 ", "RQ_POOL_TERM": "graceful-wait"}
    pool = pool_factory(env=env).start()
    assert pool.wait_workers(4) == ["bar", "foo", "foo", "high,low"]
    pool.wait_log("+ $RQ_POOL_WORKERS")
    pool.signal(signal.SIGTERM)
    assert pool.wait_exit() == 0
    assert "graceful" in pool.log()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RQ_POOL_WORKERS": "foo"}, "$RQ_POOL_WORKERS: key 'foo': each entry must be \"queue,list=count\""),
        ({"RQ_POOL_WORKERS": "foo=two"}, "worker count must be a non-negative integer, got 'two'"),
        ({"RQ_POOL_WORKERS": "foo=1;foo=2"}, "this queue list is given twice"),
        ({"RQ_POOL_WORKERS": "nope=1"}, "queue 'nope' is not in settings.RQ_QUEUES"),
        ({"RQ_POOL_TERM": "gentle"}, "$RQ_POOL_TERM='gentle' is not one of: immediate, graceful-wait, graceful"),
        ({"RQ_POOL_GRACEFUL_TIMEOUT": "soon"}, "$RQ_POOL_GRACEFUL_TIMEOUT='soon' is not a number of seconds"),
        ({"RQ_POOL_GRACEFUL_TIMEOUT": "-3"}, "$RQ_POOL_GRACEFUL_TIMEOUT='-3' is not a number of seconds"),
    ],
)
def test_bad_environment_values_are_clear_errors(tmp_path, env, message):
    config = tmp_path / "pool.yml"
    config.write_text("foo: 1\n")
    result = check("--check", "-c", str(config), env=env)
    assert result.returncode == 2, result
    assert message in result.stderr
    assert "Traceback" not in result.stderr


# -- 6. hot swap ---------------------------------------------------------------------------------


def test_hot_swap_never_leaves_zero_workers_and_loses_no_job(pool_factory, queue, redis_client, redis_server, tmp_path):
    pidfile = tmp_path / "pool.pid"
    old = pool_factory("foo: 2\n", args=("--pidfile", str(pidfile))).start()
    old.wait_workers(2)
    queue("foo").enqueue("testapp.jobs.sleep_then_record", "in-flight", 3)
    wait_for(lambda: any(f.get("state") == "busy" for f in old.registered_workers().values()), message="busy")

    counts: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        client = redis_server.client()
        while not stop.is_set():
            counts.append(client.scard("rq:workers:foo"))
            time.sleep(0.02)

    thread = threading.Thread(target=sample)
    thread.start()
    try:
        new = pool_factory("foo: 2\n", args=("--pidfile", str(pidfile), "--hot-swap")).start()
        new.wait_log("sent QUIT to the old pool")
        for n in range(10):
            queue("foo").enqueue("testapp.jobs.record", f"during-{n}")
        assert old.wait_exit(30) == 0
        new.wait_workers(2)
    finally:
        stop.set()
        thread.join()
    assert counts and min(counts) >= 1, counts
    assert pidfile.read_text().strip() == str(new.pid)
    tokens = wait_for(
        lambda: (
            {r["token"] for r in done_records(redis_client)} >= {"in-flight", *(f"during-{n}" for n in range(10))}
            and {r["token"] for r in done_records(redis_client)}
        ),
        message="every job done",
    )
    assert "in-flight" in tokens
    assert "hot swap: pool" in new.log() and "all workers stopped (graceful stop)" in old.log()
    new.signal(signal.SIGQUIT)
    assert new.wait_exit() == 0
    assert not pidfile.exists()


def test_hot_swap_needs_a_pidfile(pool_factory):
    result = pool_factory("foo: 1\n", args=("--hot-swap",)).run()
    assert result.returncode == 2 and "--hot-swap needs --pidfile" in result.stdout


# -- 7. --check ----------------------------------------------------------------------------------


def test_check_prints_plan_hides_passwords_and_forks_nothing(tmp_path, redis_server):
    config = tmp_path / "pool.yml"
    config.write_text("foo: 1\n'foo,bar':\n  count: 3\n  max_jobs: 10\n")
    url = f"redis://app:s3cret@127.0.0.1:{redis_server.port}/15"
    code = (
        "import os, sys, django\n"
        "def refuse(*a, **k):\n    raise SystemExit('forked')\n"
        "os.fork = refuse\nos.forkpty = refuse\n"
        "django.setup()\n"
        "from django.core.management import call_command\n"
        f"call_command('rqpool', '--check', '-c', {str(config)!r})\n"
    )
    env = {**os.environ, "TEST_REDIS_URL": url, "DJANGO_SETTINGS_MODULE": "testproject.settings"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=TEST_PROJECT, capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert f"configuration OK: {config}, 4 workers" in result.stdout
    assert "[foo] x1: default options" in result.stdout
    assert "[foo,bar] x3: max_jobs=10" in result.stdout
    assert "app:***@127.0.0.1" in result.stdout and "s3cret" not in result.stdout


def test_check_fails_for_bad_config(tmp_path):
    config = tmp_path / "pool.yml"
    config.write_text("foo: 1\nnope: 2\n")
    result = check("--check", "-c", str(config))
    assert result.returncode == 2
    assert f"{config}:2: key 'nope': queue 'nope' is not in settings.RQ_QUEUES" in result.stderr
    assert "configuration OK" not in result.stdout


def test_help_documents_the_operations_options():
    out = check("--help").stdout
    for option in ("--log-file", "--pidfile", "--daemon", "--hot-swap", "--ready-timeout", "$RQ_POOL_TERM"):
        assert option in out
