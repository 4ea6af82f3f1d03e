"""Hostile configuration input: the loader returns a plan or raises ConfigError, quickly and in bounded memory."""

from __future__ import annotations

import contextlib
import os
import pickle
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_rq_pool.config.bounds import MAX_DELAY
from django_rq_pool.config.errors import ConfigError
from django_rq_pool.config.loader import parse_config
from django_rq_pool.config.plan import PoolPlan
from django_rq_pool.config.validation import resolve_class, validate_plan
from django_rq_pool.config.yaml_file import MAX_FILE_BYTES, parse_yaml, read_file

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
YAML_PIECES = [
    *"abc:,-{}[]&*!?|>%@`'\"#. \n\n  ",
    "foo",
    "bar",
    "count",
    "count: ",
    "min: ",
    "max: ",
    "scale_down_delay: ",
    "{min: 1, max: 4}",
    "max_jobs: ",
    "memory_limit: ",
    "worker_class: ",
    "dequeue_strategy: ",
    "with_scheduler: ",
    "production:",
    "&a ",
    "*a",
    "<<: ",
    "!!",
    "!!python/object:os.system",
    "!!python/name:os.system",
    "!!binary ",
    "!!set ",
    "!!timestamp ",
    "2001-02-30",
    "1e999",
    "99999999999999999999999999999999999999999999999999GB",
    "-1",
    "0",
    "3",
    ".nan",
    "null",
    "true",
    "\t",
    "\x00",
    "\ufeff",
]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20), st.sampled_from(["foo", "bar,baz"])
)
structures = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(scalars.filter(lambda v: v == v), st.sampled_from(["count", "min", "max", "foo"])),
            children,
            max_size=4,
        ),
    ),
    max_leaves=20,
)


def load(text: str, environment: str | None = "production") -> PoolPlan:
    return parse_config(parse_yaml(text, "fuzz.yml"), "fuzz.yml", environment)


def assert_sound(plan: PoolPlan, cap: int = 64) -> None:
    """Every count a non-negative int; every autoscaled list within 0 <= min <= count <= max <= cap."""
    assert isinstance(plan, PoolPlan)
    for group in plan.groups:
        assert isinstance(group.count, int) and not isinstance(group.count, bool) and group.count >= 0
        bounds = group.autoscale
        if bounds is not None:
            assert 0 <= bounds.min <= group.count <= bounds.max <= cap, group
            assert 0 <= bounds.scale_down_delay <= MAX_DELAY, group


@FUZZ
@given(st.lists(st.sampled_from(YAML_PIECES), max_size=40).map("".join))
def test_random_yaml_text_gives_a_plan_or_a_config_error(text):
    try:
        assert_sound(load(text))
    except ConfigError as exc:
        assert len(str(exc)) < 2000


@FUZZ
@given(st.text(max_size=200))
def test_random_unicode_text_gives_a_plan_or_a_config_error(text):
    with contextlib.suppress(ConfigError):
        assert isinstance(load(text), PoolPlan)


@FUZZ
@given(structures, st.sampled_from([None, "production", "foo"]))
def test_random_structures_give_a_plan_or_a_config_error(data, environment):
    """settings.RQ_POOL is a Python value: anything may be there."""
    try:
        plan = parse_config(data, "settings.RQ_POOL", environment)
    except ConfigError:
        return
    assert_sound(plan)


bound_values = st.one_of(st.integers(-3, 80), st.none(), st.booleans(), st.floats(), st.text(max_size=3))


def natural(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def bounds_valid(block: dict, cap: int) -> bool:
    """The documented rule, stated independently of the loader, for a list's options mapping."""
    markers = block.keys() & {"count", "min", "max"}
    if not markers or not all(natural(block[k]) for k in markers):
        return False
    scaled = bool(markers & {"min", "max"})
    if "scale_down_delay" in block:
        delay = block["scale_down_delay"]
        if not scaled or isinstance(delay, bool) or not isinstance(delay, (int, float)):
            return False
        if not 0 <= delay <= MAX_DELAY:
            return False
    if not scaled:
        return True
    low, high = block.get("min", 0), block.get("max", cap)
    return low <= high <= cap and ("count" not in block or low <= block["count"] <= high)


@FUZZ
@given(
    st.fixed_dictionaries(
        {}, optional={"count": bound_values, "min": bound_values, "max": bound_values, "scale_down_delay": bound_values}
    ),
    st.integers(1, 70),
)
def test_bounds_give_a_sound_plan_exactly_when_they_are_valid(block, cap):
    try:
        plan = parse_config({"foo": block}, "settings.RQ_POOL", None, cap)
    except ConfigError as exc:
        assert not bounds_valid(block, cap), f"refused a valid block {block}: {exc}"
        assert "\n" not in str(exc)
        return
    if not block:
        assert plan.groups == ()  # an empty mapping is an (empty) environment section
        return
    assert bounds_valid(block, cap), f"accepted an invalid block {block}"
    assert_sound(plan, cap)
    (group,) = plan.groups
    if block.keys() & {"min", "max"}:
        assert group.autoscale is not None and group.count == block.get("count", group.autoscale.min)
    else:
        assert group.autoscale is None and group.count == block["count"]


def in_limited_child(func: Callable[[], Any], extra_memory: int = 256 * 2**20, uid: int | None = None) -> Any:
    """Run func in a forked child whose address space may grow by extra_memory only; return its result or error."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            with open(f"/proc/{os.getpid()}/statm") as statm:
                current = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            resource.setrlimit(resource.RLIMIT_AS, (current + extra_memory, current + extra_memory))
            started = time.process_time()  # CPU time: what a hostile file costs, whatever the load
            try:
                outcome: Any = ("value", repr(func()))
            except ConfigError as exc:
                outcome = ("ConfigError", str(exc))
            except BaseException as exc:  # reported to the test, which fails on it
                outcome = (type(exc).__name__, repr(exc)[:500])
            with os.fdopen(write_fd, "wb") as out:
                pickle.dump((*outcome, time.process_time() - started), out)
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as results:
        data = results.read()
    os.waitpid(pid, 0)
    return pickle.loads(data)


def rejected(func: Callable[[], Any], **kwargs: Any) -> str:
    kind, message, seconds = in_limited_child(func, **kwargs)
    assert kind == "ConfigError", f"expected a ConfigError, got {kind}: {message}"
    assert seconds < 5, f"took {seconds:.1f} CPU seconds to reject"
    return message


BILLION_LAUGHS = "a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']\n" + "".join(
    f"{b}: &{b} [*{a},*{a},*{a},*{a},*{a},*{a},*{a},*{a},*{a}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize(
    "text",
    [
        BILLION_LAUGHS,
        BILLION_LAUGHS + "foo: *i\n",
        BILLION_LAUGHS + "foo: {count: 1, max_jobs: *i}\n",
        BILLION_LAUGHS + "foo: {count: 1, memory_limit: *i}\n",
        BILLION_LAUGHS + "production: {foo: *i}\n",
        "x: &x [" + ", ".join(["*x"] * 200) + "]\n",
    ],
    ids=["bomb-alone", "bomb-as-count", "bomb-as-option", "bomb-as-memory", "bomb-in-environment", "many-aliases"],
)
def test_alias_bomb_is_rejected_quickly_in_bounded_memory(text):
    message = rejected(lambda: load(text))
    assert len(message) < 500


def test_deep_nesting_is_rejected(tmp_path):
    path = tmp_path / "deep.yml"
    path.write_text("foo: " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert "nested too deeply" in rejected(lambda: read_file(path))
    assert "nested too deeply" in rejected(lambda: load("foo: " + "{a: " * 5000 + "1" + "}" * 5000))


def test_huge_file_is_rejected_without_reading_it_all(tmp_path):
    path = tmp_path / "huge.yml"
    with path.open("wb") as out:
        out.truncate(4 * 2**30)  # sparse: 4 GiB that a full read would need in memory
    message = rejected(lambda: read_file(path), extra_memory=64 * 2**20)
    assert f"larger than {MAX_FILE_BYTES} bytes" in message


def test_non_utf8_is_rejected(tmp_path):
    path = tmp_path / "latin1.yml"
    path.write_bytes("foo: 1\ncafé: 2\n".encode("latin-1"))
    assert "is not UTF-8 text (bad byte at offset 10)" in rejected(lambda: read_file(path))


def test_directory_fifo_and_device_are_rejected(tmp_path):
    assert "is a directory" in rejected(lambda: read_file(tmp_path))
    fifo = tmp_path / "pipe.yml"
    os.mkfifo(fifo)  # opening it would block forever without a writer
    assert "is not a regular file" in rejected(lambda: read_file(fifo))
    link = tmp_path / "zero.yml"
    link.symlink_to("/dev/zero")
    assert "is not a regular file" in rejected(lambda: read_file(link))


def test_unreadable_file_is_rejected(tmp_path):
    path = tmp_path / "secret.yml"
    path.write_text("foo: 1\n")
    path.chmod(0)
    # root reads mode-000 files, so the child drops to an unprivileged uid to see the permission error.
    uid = 65534 if os.geteuid() == 0 else None
    assert "cannot be read: Permission denied" in rejected(lambda: read_file(Path(path)), uid=uid)


@pytest.mark.parametrize(
    "text",
    [
        "foo: !!python/object/apply:os.system ['touch /tmp/rqpool-pwned']\n",
        "foo: !!python/object:collections.OrderedDict {}\n",
        "!!python/name:os.system : 1\n",
        "foo: {count: 1, max_jobs: !!python/object/new:int [5]}\n",
    ],
)
def test_no_object_is_constructed_from_yaml_tags(text):
    assert "could not determine a constructor" in rejected(lambda: load(text))
    assert not os.path.exists("/tmp/rqpool-pwned")


@pytest.mark.parametrize(
    "option, path, wanted",
    [
        ("worker_class", "os.system", "is not a subclass of rq.worker.BaseWorker"),
        ("worker_class", "rq.job.Job", "is not a subclass of rq.worker.BaseWorker"),
        ("job_class", "rq.queue.Queue", "is not a subclass of rq.job.Job"),
        ("queue_class", "builtins.object", "is not a subclass of rq.queue.Queue"),
        ("worker_class", "no.such.module.Worker", "cannot be imported"),
    ],
)
def test_dotted_paths_must_name_the_right_kind_of_class(option, path, wanted):
    with pytest.raises(ConfigError, match=wanted):
        validate_plan(load(f"foo: {{count: 1, {option}: {path}}}\n"))
    assert resolve_class("rq.worker.SimpleWorker", "worker_class", "x").__name__ == "SimpleWorker"
