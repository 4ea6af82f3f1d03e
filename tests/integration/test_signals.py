"""The master's signal table through the real ``manage.py rqpool`` (issue 3, sections 1 and 2)."""

from __future__ import annotations

import json
import os
import re
import signal
import time

import psutil
import pytest

from ..harness import done_records, wait_for
from .lifecycle import SLOW, assert_failed_with, assert_nothing_left, status, wait_started, wait_status

SIMPLE = "foo:\n  count: 1\n  worker_class: rq.worker.SimpleWorker\n"
PREFORK = "foo:\n  count: 1\n  prefork_job_child: true\n"


def pids_by_list(pool) -> dict[str, set[int]]:
    found: dict[str, set[int]] = {}
    for proc in pool.worker_processes():
        found.setdefault(proc.cmdline()[0].rsplit("Listening on ", 1)[-1], set()).add(proc.pid)
    return found


def master_title(pool) -> str:
    return psutil.Process(pool.pid).cmdline()[0]


def all_suspended(pool, count: int) -> bool:
    """Exactly ``count`` workers registered, every one paused (rq state suspended)."""
    workers = pool.registered_workers().values()
    return len(workers) == count and all(w.get("state") == "suspended" for w in workers)


# -- HUP -------------------------------------------------------------------------------


def test_hup_grows_shrinks_adds_and_removes_lists_and_keeps_unchanged_workers(pool_factory, queue, redis_client):
    pool = pool_factory("foo: 1\nbar: 2\nhigh: 1\nlow: 1\n").start()
    pool.wait_workers(5)
    before = pids_by_list(pool)
    busy = queue("foo").enqueue(SLOW, "removed-list", 3)
    wait_started(redis_client)
    pool.write_config("bar: 1\nhigh: 1\nlow: 2\nbaz: 1\n")
    pool.signal(signal.SIGHUP)
    pool.wait_log("HUP: reloaded 5 workers")
    pool.wait_log("stopping worker")
    assert status(busy) == "started"  # the removed list's worker finishes its job first
    foo_worker = next(iter(before["foo"]))
    pool.wait_log(f"worker {foo_worker} [foo] exited with status 0")
    assert status(busy) == "finished"
    assert pool.wait_workers(5) == ["bar", "baz", "high", "low", "low"]
    after = pids_by_list(pool)
    assert after["high"] == before["high"]  # unchanged list: not restarted
    assert before["low"] < after["low"]  # grown: the old worker stays
    assert after["bar"] < before["bar"]  # shrunk: one of the two stays
    assert "foo" not in after
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)


def test_hup_with_settings_config_has_nothing_to_reload(pool_factory, redis_client):
    pool = pool_factory(env={"TEST_RQ_POOL_SETTINGS": json.dumps({"foo": 2})}).start()
    pool.wait_workers(2)
    before = {p.pid for p in pool.worker_processes()}
    pool.signal(signal.SIGHUP)
    pool.wait_log("HUP: configuration comes from settings.RQ_POOL; nothing to reload")
    assert pool.wait_workers(2) == ["foo", "foo"]
    assert {p.pid for p in pool.worker_processes()} == before
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)


def test_hup_survives_a_reload_that_raises_and_keeps_the_workers(pool_factory, redis_client):
    pool = pool_factory("foo: 1\n").start()
    pool.wait_workers(1)
    before = {p.pid for p in pool.worker_processes()}
    pool.write_config("foo:\n  count: 2\n  worker_class: testapp.broken_on_import.Worker\n")
    pool.signal(signal.SIGHUP)
    pool.wait_log("RuntimeError: broken_on_import: failing on purpose")
    assert "HUP: reload failed, keeping the last good configuration" in pool.log()
    wait_for(lambda: "last reload failed" in master_title(pool), message="title 'last reload failed'")
    assert pool.wait_workers(1) == ["foo"]
    assert {p.pid for p in pool.worker_processes()} == before
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)


# -- QUIT, INT ---------------------------------------------------------------------------


def test_quit_waits_for_busy_jobs_then_exits_0(pool_factory, queue, redis_client):
    pool = pool_factory("foo: 2\n").start()
    pool.wait_workers(2)
    job = queue("foo").enqueue(SLOW, "q", 3)
    wait_started(redis_client)
    pool.signal(signal.SIGQUIT)
    wait_for(lambda: ": stopping: managing [" in master_title(pool), message="master title 'stopping'")
    assert pool.wait_exit() == 0
    assert status(job) == "finished"  # the master exited only after the job was done
    log = pool.log()
    assert log.rindex("Successfully completed") < log.rindex("master exiting with status 0")
    assert log.rstrip().splitlines()[-1].endswith("master exiting with status 0: all workers stopped (graceful stop)")
    assert_nothing_left(pool, redis_client)


def test_int_warm_stops_workers_and_the_master_exits_at_once(pool_factory, queue, redis_client):
    pool = pool_factory("foo: 2\n").start()
    pool.wait_workers(2)
    job = queue("foo").enqueue(SLOW, "i", 4)
    wait_started(redis_client)
    pool.signal(signal.SIGINT)
    assert pool.wait_exit(3) == 0
    assert status(job) == "started"  # the master did not wait
    assert "INT: workers told to finish their jobs" in pool.log()
    wait_status(job, "finished")
    assert_nothing_left(pool, redis_client)


# -- TERM --------------------------------------------------------------------------------


def test_term_immediate_fails_the_job_in_flight_with_a_reason(pool_factory, queue, redis_client):
    pool = pool_factory("foo: 1\nbar: 1\n").start()
    pool.wait_workers(2)
    job = queue("foo").enqueue(SLOW, "t", 60)
    wait_started(redis_client)
    pool.signal(signal.SIGTERM)
    assert pool.wait_exit() == 0
    assert_failed_with(job, redis_client, "killed by rqpool (SIGUSR1")
    assert done_records(redis_client) == []
    assert_nothing_left(pool, redis_client)


def test_term_graceful_wait_from_env_lets_the_job_finish(pool_factory, queue, redis_client):
    pool = pool_factory("foo: 1\n", env={"RQ_POOL_TERM": "graceful-wait"}).start()
    pool.wait_workers(1)
    job = queue("foo").enqueue(SLOW, "gw", 2)
    wait_started(redis_client)
    pool.signal(signal.SIGTERM)
    assert pool.wait_exit() == 0
    assert status(job) == "finished"
    assert_nothing_left(pool, redis_client)


def test_term_graceful_wait_timeout_escalates_to_cold_stop_then_sigkill(pool_factory, queue, redis_client):
    config = "foo: 1\nbar:\n  count: 1\n  worker_class: rq.worker.SimpleWorker\n"
    args = ("--term", "graceful-wait", "--graceful-timeout", "1", "--kill-timeout", "2")
    pool = pool_factory(config, args=args).start()
    pool.wait_workers(2)
    killable = queue("foo").enqueue(SLOW, "killable", 60)
    stubborn = queue("bar").enqueue("testapp.signal_jobs.stubborn", "stubborn", 60)
    wait_started(redis_client, 2)
    began = time.monotonic()
    pool.signal(signal.SIGTERM)
    status_code = pool.wait_exit(30)
    assert time.monotonic() - began < 15
    log = pool.log()
    assert "graceful stop timed out; killing the jobs still running" in log
    assert "did not stop; SIGKILL" in log
    assert status_code == 5
    assert "master exiting with status 5" in log.rstrip().splitlines()[-1]
    assert_failed_with(killable, redis_client, "killed by rqpool")
    assert_failed_with(stubborn, redis_client, "killed by SIGKILL while running this job; failed by rqpool")
    assert_nothing_left(pool, redis_client)


def test_term_graceful_does_not_wait(pool_factory, queue, redis_client):
    pool = pool_factory("foo: 1\n", args=("--term", "graceful")).start()
    pool.wait_workers(1)
    job = queue("foo").enqueue(SLOW, "g", 4)
    wait_started(redis_client)
    pool.signal(signal.SIGTERM)
    assert pool.wait_exit(3) == 0
    assert status(job) == "started"
    wait_status(job, "finished")
    assert_nothing_left(pool, redis_client)


@pytest.mark.parametrize("config", ["foo: 1\n", SIMPLE, PREFORK], ids=["forking", "simple", "prefork"])
def test_term_to_one_worker_fails_its_job_and_stops_it(pool_factory, queue, redis_client, config):
    pool = pool_factory(config).start()
    pool.wait_workers(1)
    (worker,) = pool.worker_processes()
    job = queue("foo").enqueue(SLOW, "term-worker", 60)
    wait_started(redis_client)
    os.kill(worker.pid, signal.SIGTERM)  # immediate mode: the job is killed and the worker stops
    assert_failed_with(job, redis_client, "killed by rqpool (SIGTERM to worker")
    pool.wait_log(f"worker {worker.pid} [foo] exited with status 0")
    pool.wait_workers(1)  # replaced
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)


# -- WINCH, USR1, USR2, CONT -------------------------------------------------------------------------


def test_winch_stops_every_worker_and_hup_brings_them_back(pool_factory, redis_client):
    pool = pool_factory("foo: 1\nbar: 1\n").start()
    pool.wait_workers(2)
    pool.signal(signal.SIGWINCH)
    wait_for(lambda: not pool.worker_processes() and not pool.registered_workers(), message="zero workers")
    wait_for(lambda: ": running: managing [] (0/0 workers)" in master_title(pool), message="master title 0/0")
    assert pool.process.poll() is None
    pool.signal(signal.SIGHUP)
    assert pool.wait_workers(2) == ["bar", "foo"]
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)


@pytest.mark.parametrize("config", ["foo: 1\n", SIMPLE, PREFORK], ids=["forking", "simple", "prefork"])
def test_usr1_kills_the_current_job_and_the_worker_lives_on(pool_factory, queue, redis_client, config):
    pool = pool_factory(config).start()
    pool.wait_workers(1)
    (name,) = pool.registered_workers()
    (worker,) = pool.worker_processes()
    job = queue("foo").enqueue(SLOW, "u1", 60)
    wait_started(redis_client)
    pool.signal(signal.SIGUSR1)
    assert_failed_with(job, redis_client, f"killed by rqpool (SIGUSR1 to worker {name}")
    pool.wait_workers(1)
    assert [p.pid for p in pool.worker_processes()] == [worker.pid]
    assert list(pool.registered_workers()) == [name]
    assert f"worker {worker.pid} [foo] " not in pool.log().split("master received SIGUSR1")[1]  # no exit logged
    assert "registering death" not in pool.log()
    later = queue("foo").enqueue("testapp.jobs.record", "after-usr1")
    wait_status(later, "finished")
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)


def test_usr2_pauses_after_the_current_job_and_cont_resumes(pool_factory, queue, redis_client):
    pool = pool_factory("foo: 2\n").start()
    pool.wait_workers(2)
    worker_pids = {p.pid for p in pool.worker_processes()}
    current = queue("foo").enqueue(SLOW, "current", 2)
    wait_started(redis_client)
    pool.signal(signal.SIGUSR2)
    pool.wait_log("paused, finishing any current job")
    states = lambda: sorted(w.get("state") for w in pool.registered_workers().values())  # noqa: E731
    wait_for(lambda: states() == ["busy", "suspended"], message="the idle worker suspended at once")
    waiting = queue("foo").enqueue("testapp.jobs.record", "while-paused")
    wait_status(current, "finished")
    wait_for(lambda: all_suspended(pool, 2), message="both workers suspended")
    time.sleep(1.5)  # a window in which a worker that ignored the pause would take the job
    assert status(waiting) == "queued"
    assert redis_client.llen("rq:queue:foo:intermediate") == 0
    pool.signal(signal.SIGCONT)
    wait_status(waiting, "finished")
    assert {p.pid for p in pool.worker_processes()} == worker_pids
    assert "exited" not in pool.log()
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)


def test_sliced_blocking_dequeue_keeps_max_idle_time(pool_factory, redis_client):
    """Blocking waits are cut into 5 s slices (so a warm stop is never missed); max_idle_time still holds."""
    pool = pool_factory("foo:\n  count: 1\n  max_idle_time: 7\n").start()
    pool.wait_workers(1)
    (worker,) = pool.worker_processes()
    began = time.monotonic()
    pool.wait_log(f"worker {worker.pid} [foo] exited with status 0", timeout=30)
    assert 6 <= time.monotonic() - began < 20
    assert "idle for 7 seconds, quitting" in pool.log()
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)


# -- escalation and bursts ----------------------------------------------------------------


@pytest.mark.parametrize("second", [signal.SIGQUIT, signal.SIGINT, signal.SIGTERM])
def test_second_stop_signal_during_a_graceful_stop_escalates(pool_factory, queue, redis_client, second):
    pool = pool_factory("foo: 1\n", args=("--term", "graceful-wait")).start()
    pool.wait_workers(1)
    job = queue("foo").enqueue(SLOW, "esc", 60)
    wait_started(redis_client)
    pool.signal(signal.SIGQUIT)
    wait_for(lambda: ": stopping: managing [" in master_title(pool), message="master title 'stopping'")
    pool.signal(second)
    assert pool.wait_exit() == 0
    assert "escalating to a cold stop" in pool.log()
    assert_failed_with(job, redis_client, "killed by rqpool (SIGUSR1")
    assert_nothing_left(pool, redis_client)


def test_stop_signal_during_a_cold_stop_sigkills_at_once(pool_factory, queue, redis_client):
    pool = pool_factory("foo:\n  count: 1\n  worker_class: rq.worker.SimpleWorker\n").start()
    pool.wait_workers(1)
    job = queue("foo").enqueue("testapp.signal_jobs.stubborn", "stubborn", 60)
    wait_started(redis_client)
    pool.signal(signal.SIGTERM)  # immediate: a cold stop, which this job ignores
    wait_for(lambda: ": stopping (cold): managing [" in master_title(pool), message="title 'stopping (cold)'")
    began = time.monotonic()
    pool.signal(signal.SIGTERM)
    assert pool.wait_exit() == 5
    assert time.monotonic() - began < 8  # not the 10 s kill timeout
    assert "TERM during a cold stop: killing the remaining workers now" in pool.log()
    assert_failed_with(job, redis_client, "killed by SIGKILL while running this job; failed by rqpool")
    assert_nothing_left(pool, redis_client)


def test_a_burst_of_signals_is_handled_once_each_in_turn(pool_factory, queue, redis_client):
    pool = pool_factory("foo: 2\n").start()
    pool.wait_workers(2)
    workers = {p.pid for p in pool.worker_processes()}
    burst = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGCONT)
    for signum in burst:
        pool.signal(signum)
    pool.wait_log("master received SIGCONT")
    lines = [line for line in pool.log().splitlines() if "[master]" in line]
    received = [line.rsplit(" ", 1)[1] for line in lines if "master received SIG" in line]
    assert sorted(received) == sorted(s.name for s in burst)  # none lost, none twice
    hup = next(i for i, line in enumerate(lines) if "master received SIGHUP" in line)
    assert "HUP: reloaded" in lines[hup + 1]  # each handled to the end before the next one
    job = queue("foo").enqueue("testapp.jobs.record", "after-burst")  # USR2 then CONT: not paused
    wait_status(job, "finished")
    assert {p.pid for p in pool.worker_processes()} == workers
    assert "Traceback" not in pool.log()
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)


# -- signals sent to the whole group -----------------------------------------------------------


@pytest.mark.parametrize("args", [(), ("--single-process-group",)], ids=["own-groups", "single-group"])
def test_ctrl_c_to_the_foreground_group_stops_everything_gracefully(pool_factory, queue, redis_client, args):
    pool = pool_factory("foo: 1\nbar: 1\n", args=args).start()
    pool.wait_workers(2)
    groups = {os.getpgid(p.pid) for p in pool.worker_processes()}
    assert groups == ({pool.pid} if args else {p.pid for p in pool.worker_processes()})
    job = queue("foo").enqueue(SLOW, "ctrl-c", 3)
    wait_started(redis_client)
    os.killpg(pool.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    assert pool.wait_exit() == 0
    wait_status(job, "finished")
    assert "cold shut down" not in pool.log()
    assert_nothing_left(pool, redis_client)


def test_second_ctrl_c_in_a_single_group_fails_the_job_instead_of_leaving_it_started(pool_factory, queue, redis_client):
    pool = pool_factory("foo: 1\n", args=("--single-process-group",)).start()
    pool.wait_workers(1)
    job = queue("foo").enqueue(SLOW, "ctrl-c-twice", 60)
    wait_started(redis_client)
    os.killpg(pool.pid, signal.SIGINT)
    assert pool.wait_exit() == 0
    pool.wait_log("SIGINT: warm stop")  # the worker had it too, and started a warm stop
    time.sleep(1.2)  # rq takes a second INT within 1 s for the same Ctrl-C
    os.killpg(pool.pid, signal.SIGINT)  # the second Ctrl-C: the workers are still in the foreground group
    assert_failed_with(job, redis_client, "killed by rqpool (SIGINT to worker")
    assert_nothing_left(pool, redis_client)


@pytest.mark.parametrize("prefork", [False, True], ids=["fork-per-job", "prefork"])
@pytest.mark.parametrize("mode", ["immediate", "graceful-wait", "graceful"])
def test_term_to_every_process_leaves_no_job_started(pool_factory, queue, redis_client, mode, prefork):
    """With ``prefork_job_child`` the idle worker's waiting job child gets the TERM too."""
    options = "  prefork_job_child: true\n" if prefork else ""
    pool = pool_factory(f"foo:\n  count: 1\n{options}bar:\n  count: 1\n{options}", args=("--term", mode)).start()
    pool.wait_workers(2)
    job = queue("foo").enqueue(SLOW, "everyone", 3)
    wait_started(redis_client)
    expected = 6 if prefork else 5
    wait_for(
        lambda: len(pool.processes()) == expected,
        message=f"master, control child, 2 workers, a job child (and a waiting one): {pool.processes()}",
    )
    for proc in pool.processes():  # a container runtime or a Heroku dyno stop
        os.kill(proc.pid, signal.SIGTERM)
    assert pool.wait_exit() == 0
    if mode == "immediate":
        text = assert_failed_with(job, redis_client, "Work-horse terminated unexpectedly")
        assert "signal 15" in text or "killed by rqpool (SIGTERM" in text  # whichever TERM landed first
    else:
        wait_status(job, "finished")
    assert_nothing_left(pool, redis_client)


def test_a_paused_pool_stays_paused_when_a_worker_is_replaced(pool_factory, queue, redis_client):
    """USR2 pauses the pool, not only the workers it reached: a replacement starts paused and takes no job."""
    pool = pool_factory("foo:\n  count: 1\n  max_jobs: 1\n").start()
    pool.wait_workers(1)
    (first,) = pool.worker_processes()
    current = queue("foo").enqueue(SLOW, "current", 2)
    wait_started(redis_client)
    pool.signal(signal.SIGUSR2)
    pool.wait_log("paused, finishing any current job")
    waiting = queue("foo").enqueue("testapp.jobs.record", "while-paused")
    wait_status(current, "finished")
    pool.wait_log(f"worker {first.pid} [foo] exited with status 0")  # max_jobs: 1 retires it
    wait_for(lambda: all_suspended(pool, 1), message="the replacement to start paused")
    wait_for(lambda: "(1/1 workers, paused (CONT resumes))" in master_title(pool), message="paused in the title")
    time.sleep(1.5)  # a window in which a replacement that ignored the pause would take the job
    assert status(waiting) == "queued"
    pool.signal(signal.SIGCONT)
    wait_status(waiting, "finished")
    wait_for(lambda: "paused" not in master_title(pool), message="the title without the pause")
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)


def test_ttou_then_ttin_keeps_slot_indices_within_the_count(pool_factory, redis_client):
    """TTOU stops the workers in the highest slots, so the ones left hold 0 .. count-1 ({index} log names)."""
    pool = pool_factory("foo: 3\n").start()
    pool.wait_workers(3)
    for signum, count in ((signal.SIGTTOU, 2), (signal.SIGTTOU, 1), (signal.SIGTTIN, 2)):
        pool.signal(signum)
        pool.wait_workers(count)
    log = pool.log()
    slots = {int(pid): int(index) for pid, index in re.findall(r"spawned worker (\d+) \[foo\] #(\d+)", log)}
    stopped = {int(pid) for pid in re.findall(r"stopping worker (\d+) \[foo\]", log)}
    assert sorted(index for pid, index in slots.items() if pid not in stopped) == [0, 1]
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
    assert_nothing_left(pool, redis_client)
