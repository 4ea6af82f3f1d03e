"""Autoscaling bounds in the config: min, max, scale_down_delay, the cap, and the pool's max_memory."""

from __future__ import annotations

import pytest
from django.test.utils import override_settings

from django_rq_pool.config.env_counts import apply_counts, parse_counts
from django_rq_pool.config.errors import ConfigError
from django_rq_pool.config.loader import parse_config
from django_rq_pool.config.plan import Autoscale, WorkerOptions
from django_rq_pool.config.validation import max_memory_option, max_workers_setting, validate_plan
from django_rq_pool.config.yaml_file import parse_yaml


def plan_of(text: str, environment: str | None = None, cap: int = 64):
    return parse_config(parse_yaml(text, "rq-pool.yml"), "rq-pool.yml", environment, cap)


def error_of(text: str, environment: str | None = None, cap: int = 64) -> str:
    with pytest.raises(ConfigError) as caught:
        plan_of(text, environment, cap)
    return str(caught.value)


def test_min_and_max_make_an_autoscaled_list_that_starts_at_min():
    (group,) = plan_of('"foo,bar": {min: 1, max: 16}\n').groups
    assert group.name == "foo,bar"
    assert group.count == 1
    assert group.autoscale == Autoscale(min=1, max=16, scale_down_delay=30.0)
    validate_plan(plan_of('"foo,bar": {min: 1, max: 16}\n'))


def test_count_is_the_starting_count_and_options_still_apply():
    (group,) = plan_of("foo:\n  count: 4\n  min: 2\n  max: 8\n  scale_down_delay: 2.5\n  max_jobs: 100\n").groups
    assert (group.count, group.autoscale) == (4, Autoscale(2, 8, 2.5))
    assert group.options == WorkerOptions(max_jobs=100)


def test_a_missing_min_is_zero_and_a_missing_max_is_the_cap():
    foo, bar = plan_of("foo: {max: 3}\nbar: {min: 2}\n", cap=10).groups
    assert (foo.count, foo.autoscale) == (0, Autoscale(0, 3))
    assert (bar.count, bar.autoscale) == (2, Autoscale(2, 10))


def test_fixed_lists_have_no_bounds_and_bounds_are_not_part_of_the_identity():
    fixed, scaled = plan_of("foo: 2\nbar: {min: 1, max: 4}\n").groups
    assert fixed.autoscale is None
    (same_list,) = plan_of("bar: {min: 0, max: 9}\n").groups
    assert same_list.identity == scaled.identity  # a reload that moves bounds keeps the workers


def test_environment_sections_sit_next_to_autoscaled_lists():
    text = "foo: {min: 1, max: 4}\nbar: 1\nproduction:\n  foo: {min: 2, max: 16}\n  bar: {max: 3}\nstaging:\n  foo: 5\n"
    top = {g.name: (g.count, g.autoscale) for g in plan_of(text).groups}
    assert top == {"foo": (1, Autoscale(1, 4)), "bar": (1, None)}
    production = {g.name: (g.count, g.autoscale) for g in plan_of(text, "production").groups}
    assert production == {"foo": (2, Autoscale(2, 16)), "bar": (0, Autoscale(0, 3))}
    staging = {g.name: (g.count, g.autoscale) for g in plan_of(text, "staging").groups}
    assert staging == {"foo": (5, None), "bar": (1, None)}  # a plain count makes the list fixed there


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("foo: 1\nbar:\n  min: 5\n  max: 2\n", "rq-pool.yml:3: key 'bar': min 5 is above max 2; min <= max"),
        (
            "bar:\n  max: 65\n",
            "rq-pool.yml:2: key 'bar': max 65 is above the cap of 64 workers per list (settings.RQ_POOL_MAX_WORKERS)",
        ),
        ("bar:\n  min: -1\n", "rq-pool.yml:2: key 'bar': min must be a non-negative integer, got -1"),
        ("bar:\n  max: 2.5\n", "rq-pool.yml:2: key 'bar': max must be a non-negative integer, got 2.5"),
        ("bar:\n  max: true\n", "rq-pool.yml:2: key 'bar': max must be a non-negative integer, got True"),
        ("bar:\n  min: '1'\n", "rq-pool.yml:2: key 'bar': min must be a non-negative integer, got '1'"),
        (
            "bar:\n  min: 1\n  max: 4\n  count: 9\n",
            "rq-pool.yml:4: key 'bar': count 9 is outside min..max (1..4); the starting count lies within",
        ),
        (
            "bar:\n  max: 4\n  scale_down_delay: -1\n",
            "rq-pool.yml:3: key 'bar': scale_down_delay must be a number of seconds from 0 to 86400, got -1",
        ),
        (
            "bar:\n  max: 4\n  scale_down_delay: .nan\n",
            "rq-pool.yml:3: key 'bar': scale_down_delay must be a number of seconds",
        ),
        (
            "bar:\n  count: 2\n  scale_down_delay: 10\n",
            "rq-pool.yml:3: key 'bar': scale_down_delay applies to an autoscaled list: add min and/or max",
        ),
        (
            "bar:\n  scale_down_delay: 10\n  max_jobs: 5\n",
            "rq-pool.yml:1: key 'bar': these look like a queue list's options but there is no 'count', 'min' or 'max'",
        ),
        ("production:\n  staging:\n    foo: 1\n", "needs a 'count', 'min' or 'max' (environments do not nest)"),
        ('"foo,bar":\n  baz: 1\n', "a queue list needs a count or a mapping with 'count', 'min' or 'max'"),
        ("bar:\n  min: 1\n  mx: 4\n", "rq-pool.yml:3: key 'bar': unknown option 'mx'; known options: count, min, max,"),
    ],
)
def test_bad_bounds_are_one_line_errors_with_file_line_and_key(text: str, expected: str):
    message = error_of(text, "production")
    assert expected in message
    assert "\n" not in message


def test_the_cap_comes_from_the_caller():
    assert plan_of("foo: {max: 100}\n", cap=100).groups[0].autoscale == Autoscale(0, 100)
    assert "above the cap of 8 workers" in error_of("foo: {max: 9}\n", cap=8)


def test_rq_pool_max_workers_setting_is_checked():
    assert max_workers_setting() == 64
    with override_settings(RQ_POOL_MAX_WORKERS=200):
        assert max_workers_setting() == 200
    for bad in (0, -3, "64", True, 2.0):
        with override_settings(RQ_POOL_MAX_WORKERS=bad), pytest.raises(ConfigError) as caught:
            max_workers_setting()
        assert str(caught.value).startswith("settings.RQ_POOL_MAX_WORKERS: must be a positive integer")


def test_environment_counts_set_the_starting_count_within_the_bounds():
    plan = plan_of("foo: {min: 1, max: 4}\nbar: 2\n")
    moved = apply_counts(plan, parse_counts("foo=3;bar=7"))
    assert {g.name: (g.count, g.autoscale) for g in moved.groups} == {"foo": (3, Autoscale(1, 4)), "bar": (7, None)}
    with pytest.raises(ConfigError) as caught:
        apply_counts(plan, parse_counts("foo=5"))
    assert (
        str(caught.value) == "$RQ_POOL_WORKERS: key 'foo': count 5 is outside the list's min..max (1..4 in rq-pool.yml)"
    )


def test_max_memory_from_the_option_or_the_setting():
    assert max_memory_option(None) is None
    assert max_memory_option("4GiB") == 4 * 2**30
    with override_settings(RQ_POOL_MAX_MEMORY="512MB"):
        assert max_memory_option(None) == 512 * 2**20
        assert max_memory_option("1GiB") == 2**30  # the command line wins
    with override_settings(RQ_POOL_MAX_MEMORY=1024):
        assert max_memory_option(None) == 2**30  # a bare number is MiB, as for memory_limit


@pytest.mark.parametrize("bad", ["lots", "-1GiB", "0", "2PiB"])
def test_bad_max_memory_is_a_clear_error(bad: str):
    with pytest.raises(ConfigError) as caught:
        max_memory_option(bad)
    assert str(caught.value).startswith("--max-memory: the value must be a size such as 512MB or 1GiB")
    with override_settings(RQ_POOL_MAX_MEMORY=bad), pytest.raises(ConfigError) as caught:
        max_memory_option(None)
    assert str(caught.value).startswith("settings.RQ_POOL_MAX_MEMORY: the value must be a size")
