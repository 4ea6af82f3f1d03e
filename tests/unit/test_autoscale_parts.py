"""The autoscaler's pieces around the decision: the autoscale message on the control pipe, the master's
record of autoscaled counts across reloads, the registry's peers, and the pool's memory figure."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from django_rq_pool.config.plan import Autoscale, QueueGroup
from django_rq_pool.control.autoscale.loop import autoscaled_lists, bounds_of, peers_from
from django_rq_pool.control.autoscale.memory import pool_pss, rollup
from django_rq_pool.control.autoscale.sharing import Member
from django_rq_pool.control.protocol import TO_MASTER, ProtocolError, decode
from django_rq_pool.control.state import Details, PoolView
from django_rq_pool.master.autoscaled import AutoscaledCounts


def autoscale_message(**fields) -> bytes:
    return json.dumps({"t": "autoscale", "list": "foo, bar", "count": 3, "prefer": [12, 13], **fields}).encode()


def test_an_autoscale_message_is_checked_and_normalised():
    message = decode(autoscale_message(), TO_MASTER)
    assert (message["list"], message["count"], message["prefer"]) == ("foo,bar", 3, [12, 13])


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"count": -1}, "count must not be negative"),
        ({"count": "3"}, "count must be an integer"),
        ({"count": None}, "count must be an integer"),
        ({"list": "foo,,bar"}, "bad queue list"),
        ({"prefer": "12"}, "prefer must be a list of pids"),
        ({"prefer": [0]}, "prefer must be a list of pids"),
    ],
)
def test_a_bad_autoscale_message_is_refused(fields, reason):
    with pytest.raises(ProtocolError, match=reason):
        decode(autoscale_message(**fields), TO_MASTER)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["list", "count", "prefer", "extra"]),
        st.one_of(st.none(), st.integers(), st.text(max_size=8), st.lists(st.integers(), max_size=3)),
    )
)
def test_junk_autoscale_messages_are_refused_or_valid(fields):
    try:
        message = decode(json.dumps({"t": "autoscale", **fields}).encode(), TO_MASTER)
    except ProtocolError:
        return
    assert isinstance(message["count"], int) and message["count"] >= 0 and isinstance(message["list"], str)


def test_the_master_keeps_autoscaled_counts_within_the_bounds_across_reloads():
    counts = AutoscaledCounts()
    scaled = QueueGroup(("foo",), 1, autoscale=Autoscale(1, 8))
    fixed = QueueGroup(("bar",), 2)
    assert counts.check(scaled, 6, pinned=False) is None
    assert counts.check(scaled, 9, pinned=False) == "9 is outside 1..8"
    assert counts.check(scaled, 6, pinned=True) == "an override pins the list"
    assert counts.check(fixed, 3, pinned=False) == "the list is not autoscaled (any more)"
    assert counts.check(None, 3, pinned=False) == "the list is not autoscaled (any more)"
    counts.set(("foo",), 6)
    assert counts.applied(scaled).count == 6 and counts.applied(fixed) is fixed
    narrower = QueueGroup(("foo",), 1, autoscale=Autoscale(1, 4))  # HUP lowered max
    counts.rebase((narrower, fixed))
    assert counts.applied(narrower).count == 4
    now_fixed = QueueGroup(("foo",), 2)  # HUP made it a fixed list
    counts.rebase((now_fixed,))
    assert counts.counts == {} and counts.applied(now_fixed).count == 2


def test_peers_come_from_other_live_pools_serving_the_list():
    status = {
        "pools": [
            {"id": "me:1", "state": "running", "lists": [{"key": "foo", "busy": 5, "min": 0, "max": 9}]},
            {
                "id": "b:2",
                "state": "running",
                "lists": [{"key": "foo", "busy": 2, "min": 1, "max": 4, "override": None}],
            },
            {"id": "c:3", "state": "running", "lists": [{"key": "foo", "busy": 1, "desired": 3, "min": None}]},
            {
                "id": "d:4",
                "state": "running",
                "lists": [{"key": "foo", "busy": 0, "desired": 2, "min": 1, "override": 2}],
            },
            {"id": "e:5", "state": "stopping", "lists": [{"key": "foo", "busy": 0, "min": 0, "max": 9}]},
            {"id": "f:6", "state": "running", "lists": [{"key": "foo", "busy": "junk"}, {"key": "bar", "desired": 1}]},
        ]
    }
    peers = peers_from(status, "me:1")
    assert peers["foo"] == [Member("b:2", 2, 1, 4), Member("c:3", 1, 3, 3, 3), Member("d:4", 0, 2, 2, 2)]
    assert peers["bar"] == [Member("f:6", 0, 1, 1, 1)]


def test_only_autoscaled_unpinned_lists_are_steered():
    lists = [
        {"key": "a", "min": 1, "max": 4, "scale_down_delay": 5.0, "override": None},
        {"key": "b", "min": None, "max": None, "override": None},
        {"key": "c", "min": 0, "max": 2, "scale_down_delay": 30.0, "override": 2},
    ]
    assert [item["key"] for item in autoscaled_lists(lists)] == ["a"]
    assert bounds_of(lists[0]) == Autoscale(1, 4, 5.0)


def test_memory_figures_come_from_smaps_rollup():
    mine = rollup(os.getpid())
    assert mine["Pss"] > 0 and mine["Rss"] >= mine["Pss"]
    assert rollup(2**22 + 7) == {}  # no such process
    assert pool_pss(os.getpid()) >= 0.9 * mine["Pss"]  # this process and its children (PSS moves a little)
    assert pool_pss(2**22 + 7) is None


def test_a_worker_rq_calls_started_is_starting_not_busy():
    """rq's worker state 'started' is set at the worker's birth, before it listens: it runs no job."""
    view = PoolView()
    view.apply(
        {
            "t": "snapshot",
            "seq": 1,
            "pool": {"id": "h:1"},
            "lists": [{"key": "foo", "queues": ["foo"], "min": 0, "max": 4, "desired": 2}],
            "workers": [
                {"pid": 11, "name": "w11", "list": "foo", "started_at": 0.0, "listening": False},
                {"pid": 12, "name": "w12", "list": "foo", "started_at": 0.0, "listening": True},
            ],
        }
    )
    document = view.document({11: Details(state="started"), 12: Details(state="busy")}, 0.0)
    assert [w["state"] for w in document["workers"]] == ["starting", "busy"]
    assert (document["lists"][0]["busy"], document["lists"][0]["idle"]) == (1, 1)
