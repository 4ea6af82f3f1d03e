"""The control plane on the master's side: settings, the pool's name, a list's max, what a scale-down stops."""

from __future__ import annotations

import logging

import pytest
from django.conf import settings
from django.test import override_settings

from django_rq_pool.config.control import control_settings, pool_name
from django_rq_pool.config.loader import ConfigError


def test_defaults_from_the_test_project():
    found = control_settings(None, settings)
    assert found is not None and found.name == "" and found.max_workers == 64


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"RQ_POOL_MAX_WORKERS": -1}, "RQ_POOL_MAX_WORKERS: must be a positive integer"),
        ({"RQ_POOL_MAX_WORKERS": "8"}, "RQ_POOL_MAX_WORKERS: must be a positive integer"),
        ({"RQ_POOL_CONTROL_HEARTBEAT": 0}, "RQ_POOL_CONTROL_HEARTBEAT: must be seconds between 0.2 and 60"),
        ({"RQ_POOL_CONTROL_QUEUE": "nope"}, "RQ_QUEUES['nope'], which does not exist"),
    ],
)
def test_bad_settings_are_config_errors(overrides, error):
    with (
        override_settings(**overrides),
        pytest.raises(ConfigError, match=error.replace("[", r"\[").replace("]", r"\]")),
    ):
        control_settings(None, settings)


def test_no_default_queue_and_no_setting_turns_it_off_with_a_warning(caplog):
    with override_settings(RQ_POOL_CONTROL_QUEUE=None), caplog.at_level(logging.WARNING):
        assert control_settings(None, settings) is None
    assert "control plane off: RQ_QUEUES has no 'default' entry" in caplog.text


def test_turned_off():
    with override_settings(RQ_POOL_CONTROL=False):
        assert control_settings(None, settings) is None


def test_the_name_comes_from_the_option_then_the_environment_then_settings(monkeypatch):
    monkeypatch.setenv("RQ_POOL_NAME", "from-env")
    with override_settings(RQ_POOL_NAME="from-settings"):
        assert pool_name("from-option", settings) == "from-option"
        assert pool_name(None, settings) == "from-env"
        monkeypatch.delenv("RQ_POOL_NAME")
        assert pool_name(None, settings) == "from-settings"
    with pytest.raises(ConfigError, match="is not a pool name"):
        pool_name("has space", settings)


def test_a_list_max_is_parsed_and_bounds_its_count():
    """A list with ``max`` is autoscaled (docs/autoscaling.md); its ``max`` also caps a ``scale``."""
    from django_rq_pool.config.loader import parse_config

    (group,) = parse_config({"foo": {"count": 2, "max": 8}}, "rq-pool.yml").groups
    assert (group.count, group.max) == (2, 8)
    assert group.identity == parse_config({"foo": {"count": 2}}, "rq-pool.yml").groups[0].identity  # no restart
    with pytest.raises(ConfigError, match=r"count 9 is outside min\.\.max \(0\.\.8\)"):
        parse_config({"foo": {"count": 9, "max": 8}}, "rq-pool.yml")
    with pytest.raises(ConfigError, match="max must be a non-negative integer"):
        parse_config({"foo": {"count": 1, "max": "lots"}}, "rq-pool.yml")


def test_a_shrinking_list_stops_the_preferred_idle_workers_first_then_the_highest_slots():
    from django_rq_pool.config.plan import QueueGroup
    from django_rq_pool.hooks import WorkerContext
    from django_rq_pool.master.roster import Roster, WorkerRecord

    foo = QueueGroup(("foo",), 4)
    roster = Roster()
    roster.plan((foo,))
    for index in range(4):
        roster.add(WorkerRecord(100 + index, WorkerContext(foo, index, f"w{index}", 1), float(index)))
    roster.plan((QueueGroup(("foo",), 2),))
    assert [r.pid for r in roster.surplus(foo.identity)] == [103, 102]  # no preference: highest slots
    roster.prefer_retire = {100}  # the control child saw only slot 0 idle
    assert [r.pid for r in roster.surplus(foo.identity)] == [100, 103]
