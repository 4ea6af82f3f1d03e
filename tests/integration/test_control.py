"""The control plane through real pools, a real redis-server and the real ``rqpoolctl`` (issue 12).

The test project sets a 1 s heartbeat, so a record's TTL is 3 s.
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import psutil
import pytest
import redis

from django_rq_pool.control import client, wire

from ..harness import rqpoolctl, wait_for
from .lifecycle import SLOW, assert_nothing_left, started, status, wait_started, wait_status

TTL = 3.0


def record_of(redis_client: redis.Redis, pool) -> dict[str, Any] | None:
    value = redis_client.get(wire.record_key(f"{os.uname().nodename}:{pool.pid}"))
    return json.loads(value) if value else None


def wait_record(redis_client: redis.Redis, pool, check=lambda r: True, message="the pool's record", timeout=10.0):
    def ready():
        record = record_of(redis_client, pool)
        return record if record is not None and check(record) else None

    try:
        return wait_for(ready, timeout, message)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; record: {record_of(redis_client, pool)}; log:\n{pool.log()[-3000:]}") from None


def lists(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["key"]: item for item in record["lists"]}


def counts(key: str, **wanted: Any):
    def check(record: dict[str, Any]) -> bool:
        item = lists(record).get(key)
        return item is not None and all(item[name] == value for name, value in wanted.items())

    return check


def command(redis_client, pool_id: str, name: str, **args: Any) -> client.Reply:
    (reply,) = client.send_command(name, pool=pool_id, args=args, connection=redis_client, timeout=5)
    return reply


def pool_id(pool) -> str:
    return f"{os.uname().nodename}:{pool.pid}"


def worker_pids(pool) -> set[int]:
    return {p.pid for p in pool.worker_processes()}


def test_status_shows_every_field_and_a_clean_stop_removes_the_record(pool_factory, redis_client, redis_server):
    pool = pool_factory("foo: 2\nbar: 1\n", args=("--name", "alpha")).start()
    pool.wait_workers(3)
    record = wait_record(
        redis_client,
        pool,
        lambda r: (
            r["state"] == "running"
            and len(r["workers"]) == 3
            and all(w["state"] == "idle" and w["uss"] for w in r["workers"])
        ),
    )
    assert record["id"] == pool_id(pool) and record["name"] == "alpha" and record["pid"] == pool.pid
    assert record["state"] == "running" and record["app"] == "testproject" and record["source"].endswith(".yml")
    assert lists(record)["foo"] == {
        "queues": ["foo"], "key": "foo", "configured": 2, "override": None, "desired": 2, "running": 2,
        "busy": 0, "idle": 2, "paused": False, "backoff": None, "min": None, "max": None,
    }  # fmt: skip
    assert {w["pid"] for w in record["workers"]} == worker_pids(pool)
    assert all(w["uss"] > 0 and w["name"].startswith(os.uname().nodename) for w in record["workers"])
    assert redis_server.url not in json.dumps(record)  # no connection details, no settings
    shown = rqpoolctl(redis_server.url, "status", "--json")
    assert shown.returncode == 0, shown.stderr
    (listed,) = json.loads(shown.stdout)["pools"]
    assert listed["id"] == record["id"]
    table = rqpoolctl(redis_server.url, "status")
    assert table.returncode == 0 and f"alpha ({pool_id(pool)}) running" in table.stdout
    assert table.stdout.startswith(os.uname().nodename)

    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    wait_for(lambda: record_of(redis_client, pool) is None, 2, "the record removed at the clean stop")
    assert not redis_client.sismember(wire.POOLS, pool_id(pool))
    assert_nothing_left(pool, redis_client)


def test_scale_up_then_down_retires_idle_workers_and_never_a_busy_one(pool_factory, redis_client, queue):
    pool = pool_factory("foo: 2\n").start()
    pool.wait_workers(2)
    job = queue("foo").enqueue(SLOW, "busy", 4)
    busy_pid = wait_started(redis_client)[0]["worker_pid"]
    reply = command(redis_client, pool_id(pool), "scale", list="foo", delta=2)
    assert reply.ok and reply.changes == {"list": "foo", "from": 2, "to": 4, "override": 4}
    started_at = time.monotonic()
    wait_record(redis_client, pool, counts("foo", desired=4, running=4, override=4, configured=2))
    assert time.monotonic() - started_at < 1.5  # a change shows within about a second
    wait_for(lambda: len(pool.worker_processes()) == 4, message="4 workers")
    wait_record(redis_client, pool, counts("foo", busy=1, idle=3), "one busy worker shown", timeout=5)

    reply = command(redis_client, pool_id(pool), "scale", list="foo", count=1)
    assert reply.ok and reply.changes["to"] == 1
    wait_for(lambda: worker_pids(pool) == {busy_pid}, message="only the busy worker left")
    assert status(job) == "started"  # it was not stopped: the idle ones went
    wait_status(job, "finished")
    assert worker_pids(pool) == {busy_pid}
    record = wait_record(redis_client, pool, counts("foo", desired=1, running=1, override=1))
    assert [w["pid"] for w in record["workers"]] == [busy_pid]
    assert record["commands"]["applied"] == 2
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0


def test_ttin_is_kept_when_a_scale_of_another_list_rebuilds_the_plan(pool_factory, redis_client):
    pool = pool_factory("foo: 1\nbar: 1\n").start()
    pool.wait_workers(2)
    pool.signal(signal.SIGTTIN)
    wait_for(lambda: len(pool.worker_processes()) == 4, message="TTIN: two workers per list")
    reply = command(redis_client, pool_id(pool), "scale", list="bar", count=3)
    assert reply.ok, reply.message
    wait_record(redis_client, pool, counts("bar", desired=3, running=3), "bar scaled to 3")
    assert lists(record_of(redis_client, pool))["foo"]["desired"] == 2  # the TTIN still counts
    # The record counts a worker from its fork; its title comes a moment later.
    wait_for(lambda: len(pool.worker_processes()) == 5, message="five titled workers")
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)


def test_refusals_and_a_list_added_from_rq_queues(pool_factory, redis_client, redis_server):
    pool = pool_factory("foo:\n  count: 1\n  max: 2\nbar: 1\n", env={"TEST_RQ_POOL_MAX_WORKERS": "3"}).start()
    pool.wait_workers(2)
    wait_record(redis_client, pool)
    ident = pool_id(pool)
    refused = {
        "over the list's max": (dict(list="foo", count=3), "over the cap of 2 (its max)"),
        "over RQ_POOL_MAX_WORKERS": (dict(list="bar", delta=3), "over the cap of 3 (RQ_POOL_MAX_WORKERS)"),
        "below zero": (dict(list="bar", delta=-2), "cannot go below 0"),
        "unknown queue": (dict(list="nope", count=1), "queue 'nope' is not in settings.RQ_QUEUES"),
        "two connections": (dict(list="baz,elsewhere", count=1), "different Redis connections"),
    }
    for why, (args, reason) in refused.items():
        reply = command(redis_client, ident, "scale", **args)
        assert not reply.ok and reason in reply.message, (why, reply)
    result = rqpoolctl(redis_server.url, "scale", "bar=9", "--pool", ident)
    assert result.returncode == 1 and f"{ident}: refused:" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    for args, code, text in [
        (("scale", "bar=x", "--pool", ident), 2, "'x' is not a count"),
        (("scale", "bar=1", "--pool", "no-such-pool"), 1, "no live pool has the id or name 'no-such-pool'"),
        (("pause",), 2, "one of the arguments --pool --all is required"),
    ]:
        result = rqpoolctl(redis_server.url, *args)
        assert result.returncode == code, result
        assert text in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3  # usage + one line

    result = rqpoolctl(redis_server.url, "scale", "baz, high=2", "--pool", ident)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[baz,high] 0 -> 2 workers (configured 0)" in result.stdout
    wait_record(redis_client, pool, counts("baz,high", configured=0, override=2, running=2))
    assert sorted(pool.wait_workers(4)) == ["bar", "baz,high", "baz,high", "foo"]
    result = rqpoolctl(redis_server.url, "reset", "baz,high", "--pool", ident)
    assert result.returncode == 0 and "overrides dropped: baz,high" in result.stdout
    assert pool.wait_workers(2) == ["bar", "foo"]
    record = wait_record(redis_client, pool, lambda r: "baz,high" not in lists(r))
    assert record["commands"]["refused"] >= len(refused) + 1
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0


def test_pause_resume_reload_stop_workers_and_quit(pool_factory, redis_client, queue, redis_server):
    pool = pool_factory("foo: 2\n", args=("--name", "steer")).start()
    pool.wait_workers(2)
    wait_record(redis_client, pool)
    result = rqpoolctl(redis_server.url, "pause", "--pool", "steer")
    assert result.returncode == 0 and "paused" in result.stdout
    wait_record(
        redis_client, pool, lambda r: r["state"] == "paused" and all(w["state"] == "paused" for w in r["workers"])
    )
    waiting = queue("foo").enqueue("testapp.jobs.record", "while-paused")
    time.sleep(1.5)  # a window in which a worker that ignored the pause would take the job
    assert status(waiting) == "queued"
    result = rqpoolctl(redis_server.url, "resume", "--pool", "steer")
    assert result.returncode == 0
    wait_status(waiting, "finished")
    wait_record(redis_client, pool, lambda r: r["state"] == "running" and not lists(r)["foo"]["paused"])

    pool.write_config("foo: 1\nbar: 1\n")
    result = rqpoolctl(redis_server.url, "reload", "--pool", "steer")
    assert result.returncode == 0 and "reloaded: 2 workers" in result.stdout
    assert pool.wait_workers(2) == ["bar", "foo"]
    pool.write_config("foo: [\n")
    result = rqpoolctl(redis_server.url, "reload", "--pool", "steer")
    assert result.returncode == 1 and "refused: reload failed, keeping the last good configuration" in result.stdout

    result = rqpoolctl(redis_server.url, "stop-workers", "--pool", "steer")
    assert result.returncode == 0
    wait_for(lambda: not pool.worker_processes(), message="every worker stopped")
    wait_record(redis_client, pool, lambda r: not r["workers"] and lists(r)["foo"]["desired"] == 0)
    pool.write_config("foo: 1\nbar: 1\n")
    assert rqpoolctl(redis_server.url, "reload", "--pool", "steer").returncode == 0
    pool.wait_workers(2)

    result = rqpoolctl(redis_server.url, "quit", "--all")
    assert result.returncode == 0 and "graceful stop" in result.stdout
    assert pool.wait_exit() == 0
    wait_for(lambda: record_of(redis_client, pool) is None, 2, "the record removed")
    result = rqpoolctl(redis_server.url, "quit", "--all")
    assert result.returncode == 1 and "no live pool is registered" in result.stderr


def test_overrides_survive_a_restart_and_a_hup_keeps_them_unless_the_file_changed_the_count(
    pool_factory, redis_client, redis_server
):
    first = pool_factory("foo: 1\nbar: 1\n", args=("--name", "keeper")).start()
    first.wait_workers(2)
    wait_record(redis_client, first)
    assert command(redis_client, "keeper", "scale", list="foo", count=3).ok
    assert command(redis_client, "keeper", "scale", list="bar", count=2).ok
    wait_record(redis_client, first, counts("foo", override=3, running=3))
    stored = wait_for(
        lambda: (
            len(redis_client.hgetall(wire.overrides_key("keeper"))) == 2
            and redis_client.hgetall(wire.overrides_key("keeper"))
        ),
        message="overrides stored",
    )
    assert json.loads(stored[b"foo"]) == {"count": 3, "configured": 1}
    first.signal(signal.SIGQUIT)
    assert first.wait_exit() == 0

    second = pool_factory(args=("--name", "keeper", "-c", str(first.config_path))).start()
    record = wait_record(redis_client, second, counts("foo", override=3, configured=1, running=3))
    assert lists(record)["bar"]["override"] == 2
    assert second.wait_workers(5) == ["bar", "bar", "foo", "foo", "foo"]
    log = second.log()  # the first workers waited for the stored overrides: none started only to be stopped
    assert log.index("control: stored overrides applied") < log.index("spawned worker")
    assert "stopping worker" not in log

    # HUP: the file changes bar's count (1 -> 4) and leaves foo's alone: bar's override is dropped.
    first.write_config("foo: 1\nbar: 4\n")  # the file both pools read
    second.signal(signal.SIGHUP)
    second.wait_log("[bar] changed in the configuration (1 -> 4): override 2 dropped, the file wins")
    record = wait_record(redis_client, second, counts("bar", override=None, configured=4, desired=4))
    assert lists(record)["foo"]["override"] == 3
    assert second.wait_workers(7).count("bar") == 4
    wait_for(lambda: list(redis_client.hgetall(wire.overrides_key("keeper"))) == [b"foo"], message="bar unstored")
    result = rqpoolctl(redis_server.url, "reset", "--pool", "keeper")
    assert result.returncode == 0 and "overrides dropped: foo" in result.stdout
    assert second.wait_workers(5).count("foo") == 1
    wait_for(lambda: not redis_client.exists(wire.overrides_key("keeper")), message="overrides gone from Redis")
    second.signal(signal.SIGQUIT)
    assert second.wait_exit() == 0


def control_child(pool) -> psutil.Process:
    def find():
        for child in psutil.Process(pool.pid).children():
            try:
                if child.cmdline()[0].startswith("rqpool-control["):
                    return child
            except (psutil.Error, IndexError):
                continue
        return None

    return wait_for(find, message="the control child")


def test_a_control_child_killed_with_9_is_replaced_and_no_worker_notices(pool_factory, redis_client):
    pool = pool_factory("foo: 2\n").start()
    pool.wait_workers(2)
    wait_record(redis_client, pool)
    workers = worker_pids(pool)
    victim = control_child(pool)
    os.kill(victim.pid, signal.SIGKILL)
    pool.wait_log("control child killed by SIGKILL; restarting it")
    replacement = wait_for(lambda: (c := control_child(pool)).pid != victim.pid and c, message="a new control child")
    rewritten = time.time()
    wait_record(redis_client, pool, lambda r: r["heartbeat_at"] > rewritten, "the record written by the new child")
    assert command(redis_client, pool_id(pool), "scale", list="foo", count=3).ok
    wait_record(redis_client, pool, counts("foo", running=3))
    # The two first workers were never touched; the third is titled a moment after its fork.
    wait_for(lambda: workers < worker_pids(pool) and len(worker_pids(pool)) == 3, message="a third titled worker")
    assert "exited" not in pool.log() and "killed by" not in pool.log().replace("control child killed by", "")
    assert replacement.is_running()
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)


def test_a_redis_outage_during_a_scale_leaves_the_pool_running_and_the_registry_catches_up(
    pool_factory, redis_client, redis_server
):
    pool = pool_factory("foo: 1\n", args=("--name", "outage")).start()
    pool.wait_workers(1)
    wait_record(redis_client, pool)
    assert command(redis_client, pool_id(pool), "scale", list="foo", count=2).ok
    redis_server.stop()  # a restart without persistence: the record and the stored override are gone
    pool.wait_log("control: Redis unreachable")
    workers = worker_pids(pool)
    assert psutil.Process(pool.pid).is_running() and len(workers) >= 1
    redis_server.start()
    fresh = redis_server.client()
    wait_record(fresh, pool, counts("foo", override=2), "the record back after the outage", timeout=10)
    wait_for(lambda: fresh.hget(wire.overrides_key("outage"), "foo"), message="the override stored again")
    pool.wait_log("control: Redis reachable again")
    assert command(fresh, pool_id(pool), "scale", list="foo", count=1).ok
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0


JUNK = [
    b"",
    b"\x00\xff" * 10,
    b"not json",
    b"[1, 2, 3]",
    b'"a string"',
    b"{}",
    json.dumps({"id": "j1", "command": "scale", "reply_to": wire.reply_key("junk")}).encode(),
    json.dumps({"id": "j2", "command": "scale", "args": {"list": "foo", "count": -5},
                "reply_to": wire.reply_key("junk")}).encode(),
    json.dumps({"id": "j3", "command": "shutdown-everything", "reply_to": wire.reply_key("junk")}).encode(),
    json.dumps({"id": "j4", "command": "quit", "reply_to": "not:a:reply:key"}).encode(),
    json.dumps({"id": "j5", "command": "scale", "args": {"list": "x" * 5000, "count": 1},
                "reply_to": wire.reply_key("junk")}).encode(),
    json.dumps({"id": "j6", "command": "scale", "args": {"list": "foo", "count": 1, "prefer": ["x"]},
                "reply_to": wire.reply_key("junk")}).encode(),
    json.dumps({"id": "j7", "command": "scale", "args": {"list": "foo", "count": 1e308},
                "reply_to": wire.reply_key("junk")}).encode(),
    json.dumps({"id": "j8", "command": "reset", "args": {"list": {"$ne": 1}},
                "reply_to": wire.reply_key("junk")}).encode(),
]  # fmt: skip


def test_junk_on_the_command_channel_is_refused_and_logged_and_never_crashes(pool_factory, redis_client):
    import random

    pool = pool_factory("foo: 1\n").start()
    pool.wait_workers(1)
    wait_record(redis_client, pool)
    child = control_child(pool)
    workers = worker_pids(pool)
    rng = random.Random(12)
    messages = JUNK + [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 6000))) for _ in range(200)]
    for message in messages:
        assert redis_client.publish(wire.channel(pool_id(pool)), message) == 1
    refusals = {
        json.loads(item)["id"]: json.loads(item)
        for item in wait_for(lambda: len(redis_client.lrange(wire.reply_key("junk"), 0, -1)) >= 6 and
                             redis_client.lrange(wire.reply_key("junk"), 0, -1), message="refusals")
    }  # fmt: skip
    assert set(refusals) == {"j1", "j2", "j3", "j6", "j7", "j8"}  # j4: no usable reply_to; j5: oversized
    assert all(not r["ok"] and r["message"].startswith("refused: ") for r in refusals.values())
    assert "must not be negative" in refusals["j2"]["message"]
    assert redis_client.llen("not:a:reply:key") == 0  # never pushed outside the reply namespace
    pool.wait_log("control: refused a message on")
    record = wait_record(redis_client, pool, lambda r: r["commands"]["refused"] >= len(messages))
    assert record["commands"]["applied"] == 0
    assert control_child(pool).pid == child.pid and worker_pids(pool) == workers
    assert command(redis_client, pool_id(pool), "scale", list="foo", count=2).ok  # still listening
    assert "Traceback" not in pool.log()
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0


def test_kill_9_of_master_and_control_child_the_record_expires_by_ttl(pool_factory, redis_client):
    pool = pool_factory("foo: 1\n").start()
    pool.wait_workers(1)
    wait_record(redis_client, pool)
    os.killpg(pool.pid, signal.SIGKILL)  # the master and its control child: the host "vanished"
    killed_at = time.monotonic()
    assert record_of(redis_client, pool) is not None  # nobody removed it
    wait_for(lambda: record_of(redis_client, pool) is None, TTL + 2, "the record to expire")
    assert time.monotonic() - killed_at <= TTL + 1.0
    status = client.read_status(redis_client)
    assert status["pools"] == [] and not redis_client.sismember(wire.POOLS, pool_id(pool))
    wait_for(lambda: not pool.worker_processes(), message="the orphaned worker to stop")


@pytest.mark.parametrize("value", ["nope!", "x" * 101])
def test_a_bad_pool_name_is_a_config_error(pool_factory, value):
    result = pool_factory("foo: 1\n", args=("--name", value)).run()
    assert result.returncode == 2 and "is not a pool name" in result.stdout and "Traceback" not in result.stdout


def test_a_started_job_list_is_unchanged_by_unrelated_commands(pool_factory, redis_client, queue):
    pool = pool_factory("foo: 1\nbar: 1\n").start()
    pool.wait_workers(2)
    job = queue("foo").enqueue(SLOW, "long", 3)
    wait_started(redis_client)
    assert command(redis_client, pool_id(pool), "scale", list="bar", count=0).ok
    wait_for(lambda: len(pool.worker_processes()) == 1, message="bar's worker gone")
    wait_status(job, "finished")
    assert [r["token"] for r in started(redis_client)] == ["long"]
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0


def test_backlog_counts_queued_jobs_and_the_oldest_age(redis_client, queue):
    queue("foo").enqueue("testapp.jobs.record", "first")
    queue("foo").enqueue("testapp.jobs.record", "second")
    found = client.backlog(["foo", "bar"], connection=redis_client)
    assert found["foo"]["count"] == 2 and 0 <= found["foo"]["oldest_age"] < 60
    assert found["bar"] == {"count": 0, "oldest_age": None}


def test_status_watch_redraws_in_place(pool_factory, redis_client, redis_server):
    import select
    import subprocess
    import sys

    from ..harness import MANAGE

    pool = pool_factory("foo: 1\n", args=("--name", "watched")).start()
    pool.wait_workers(1)
    wait_record(redis_client, pool)
    env = {**os.environ, "TEST_REDIS_URL": redis_server.url}
    watch = subprocess.Popen(
        [sys.executable, str(MANAGE), "rqpoolctl", "status", "--watch", "--interval", "0.2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert watch.stdout is not None
        screens = b""
        deadline = time.monotonic() + 20
        while screens.count(b"\x1b[H\x1b[2J") < 2 and time.monotonic() < deadline:
            if select.select([watch.stdout], [], [], 0.5)[0]:
                screens += watch.stdout.read1(4096)
        assert screens.count(b"\x1b[H\x1b[2J") >= 2 and b"watched (" in screens
    finally:
        watch.kill()
        watch.wait(10)
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0


def test_an_override_survives_a_hot_swap(pool_factory, redis_client, tmp_path):
    pidfile = tmp_path / "swap.pid"
    old = pool_factory("foo: 1\n", args=("--name", "swap", "--pidfile", str(pidfile))).start()
    old.wait_workers(1)
    wait_record(redis_client, old)
    assert command(redis_client, "swap", "scale", list="foo", count=3).ok
    wait_for(lambda: redis_client.hget(wire.overrides_key("swap"), "foo"), message="the override stored")
    new = pool_factory("foo: 1\n", args=("--name", "swap", "--pidfile", str(pidfile), "--hot-swap")).start()
    wait_record(redis_client, new, counts("foo", configured=1, override=3, running=3), "the new pool at 3")
    assert old.wait_exit(30) == 0
    assert new.wait_workers(3) == ["foo", "foo", "foo"]
    assert pidfile.read_text().strip() == str(new.pid)
    new.signal(signal.SIGQUIT)
    assert new.wait_exit() == 0
