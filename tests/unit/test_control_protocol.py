"""The control plane's message formats: the master/child pipe, commands, Redis messages, the record."""

from __future__ import annotations

import json
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from django_rq_pool.control import protocol, wire
from django_rq_pool.control.commands import CommandError, check_command, parse_scale
from django_rq_pool.control.protocol import TO_CHILD, TO_MASTER, Closed, ProtocolError, Sender
from django_rq_pool.control.state import Details, PoolView
from django_rq_pool.control.table import status_table


def test_messages_cross_the_socket_pair_whole_and_in_order():
    master, child = protocol.socket_pair()
    sender = Sender(master)
    for pid in range(1, 200):
        assert sender.send({"t": "listening", "pid": pid})
    got = protocol.receive(child, TO_CHILD)
    assert [m["pid"] for m in got] == list(range(1, 200))
    assert [m["seq"] for m in got] == list(range(1, 200))
    master.close()
    with pytest.raises(Closed):
        protocol.receive(child, TO_CHILD)


def test_a_send_that_would_block_is_dropped_and_marks_the_sender_lost():
    master, child = protocol.socket_pair()
    sender = Sender(master)
    big = {"t": "lists", "lists": ["x" * 60_000]}
    sent = [sender.send(big) for _ in range(400)]
    assert not all(sent)  # the child did not read: the master never waits for it
    assert sender.lost
    child.close()
    master.close()


def test_junk_from_the_child_is_reported_per_message_and_the_rest_still_arrives():
    master, child = protocol.socket_pair()
    child.send(b"\xff\xfe not json")
    child.send(json.dumps({"t": "command", "id": "1", "command": "explode"}).encode())
    child.send(
        json.dumps({"t": "command", "id": "2", "command": "scale", "args": {"list": "foo", "count": -1}}).encode()
    )
    child.send(json.dumps({"t": "overrides", "overrides": {"foo": {"count": "x"}}}).encode())
    child.send(b"x" * (protocol.MAX_TO_MASTER + 1))
    child.send(
        json.dumps({"t": "command", "id": "3", "command": "scale", "args": {"list": "a, b", "delta": 1}}).encode()
    )
    got = protocol.receive(master, TO_MASTER)
    assert [type(m) for m in got[:5]] == [ProtocolError] * 5
    assert "unknown command 'explode'" in str(got[1])
    assert "must not be negative" in str(got[2])
    assert got[5]["args"] == {"list": "a,b", "delta": 1}


def test_the_child_does_not_take_master_kinds_and_vice_versa():
    with pytest.raises(ProtocolError):
        protocol.decode(json.dumps({"t": "command", "id": "1", "command": "quit"}).encode(), TO_CHILD)
    with pytest.raises(ProtocolError):
        protocol.decode(json.dumps({"t": "snapshot"}).encode(), TO_MASTER)


@pytest.mark.parametrize(
    ("command", "args", "error"),
    [
        ("scale", {}, "needs a queue list"),
        ("scale", {"list": "foo"}, "exactly one of count"),
        ("scale", {"list": "foo", "count": 1, "delta": 1}, "exactly one of count"),
        ("scale", {"list": "foo", "count": True}, "must be an integer"),
        ("scale", {"list": "foo", "count": 10**9}, "must be an integer"),
        ("scale", {"list": "foo", "delta": 0}, "must not be 0"),
        ("scale", {"list": "foo,,bar", "count": 1}, "empty queue name"),
        ("scale", {"list": "foo,foo", "count": 1}, "named twice"),
        ("scale", {"list": "<script>", "count": 1}, "not a valid queue name"),
        ("scale", {"list": "foo", "count": 1, "prefer": ["1"]}, "list of pids"),
        ("reset", {"count": 1}, "takes no argument 'count'"),
        ("pause", {"list": "foo"}, "takes no argument 'list'"),
        ("quit", [], "must be a mapping"),
        ("rm -rf", {}, "unknown command"),
    ],
)
def test_bad_commands_are_refused_with_a_reason(command, args, error):
    with pytest.raises(CommandError, match=error):
        check_command(command, args)


def test_scale_syntax():
    assert parse_scale("foo,bar=3") == {"list": "foo,bar", "count": 3}
    assert parse_scale("foo=+2") == {"list": "foo", "delta": 2}
    assert parse_scale("foo=-1") == {"list": "foo", "delta": -1}
    for bad in ("foo", "=3", "foo=", "foo=x", "foo=+-1", "foo=1.5", "foo=+0"):
        with pytest.raises(CommandError):
            parse_scale(bad)


def test_a_command_message_round_trips_and_refusals_keep_the_reply_address():
    message = wire.CommandMessage("scale", {"list": "foo", "count": 2}, "abc", wire.reply_key("t"))
    assert wire.parse_command(message.encode()) == message
    with pytest.raises(CommandError) as refused:
        wire.parse_command(json.dumps({"id": "x", "command": "nuke", "reply_to": wire.reply_key("t")}))
    assert refused.value.reply_to == wire.reply_key("t")
    with pytest.raises(CommandError) as refused:
        wire.parse_command(json.dumps({"id": "x", "command": "quit", "reply_to": "somebody:else"}))
    assert refused.value.reply_to is None  # never push to a key outside the reply namespace
    with pytest.raises(CommandError, match="over 4096"):
        wire.parse_command(b"{" + b" " * 5000 + b"}")


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
            max_leaves=20,
        ).map(json.dumps),
    )
)
def test_any_junk_on_the_channel_is_a_command_error_or_a_valid_command(raw):
    try:
        parsed = wire.parse_command(raw)
    except CommandError as exc:
        assert str(exc)
    else:
        assert parsed.command in ("scale", "reset", "pause", "resume", "reload", "stop-workers", "quit")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=500))
def test_any_junk_on_the_pipe_is_a_protocol_error_or_a_message(raw):
    for kinds in (TO_CHILD, TO_MASTER):
        try:
            message = protocol.decode(raw, kinds)
        except ProtocolError:
            continue
        assert message["t"] in kinds


def snapshot(**extra):
    return {
        "t": "snapshot",
        "seq": 1,
        "pool": {"id": "h:1", "name": "h", "host": "h", "pid": 1, "state": "running"},
        "lists": [
            {
                "queues": ["foo"],
                "key": "foo",
                "configured": 2,
                "override": 3,
                "override_base": 2,
                "desired": 3,
                "paused": False,
                "backoff": None,
                "min": None,
                "max": None,
                "max_jobs": 5,
                "memory_limit": None,
            },
        ],
        "workers": [
            {"pid": 10, "name": "w10", "list": "foo", "started_at": 1.0, "listening": True, "stopping": False},
            {"pid": 11, "name": "w11", "list": "foo", "started_at": 2.0, "listening": False, "stopping": False},
        ],
        **extra,
    }


def test_the_view_builds_the_record_from_snapshot_and_deltas():
    view = PoolView()
    view.apply(snapshot())
    view.apply({"t": "spawn", "seq": 2, "worker": {"pid": 12, "name": "w12", "list": "foo", "started_at": 3.0}})
    view.apply({"t": "retire", "seq": 3, "pid": 10})
    view.apply({"t": "reply", "seq": 4, "id": "x", "ok": False, "message": "no", "changes": {}})
    record = view.document({11: Details("busy", "job-1", 4, 1000)}, now=5.0)
    assert [w["state"] for w in record["workers"]] == ["stopping", "busy", "starting"]
    assert record["workers"][1]["job_id"] == "job-1" and record["workers"][1]["uss"] == 1000
    (entry,) = record["lists"]
    assert (entry["running"], entry["busy"], entry["idle"], entry["override"]) == (2, 1, 1, 3)
    assert "max_jobs" not in entry and "override_base" not in entry  # internal fields stay internal
    assert record["commands"] == {"applied": 0, "refused": 1}
    assert view.overrides() == {"foo": {"count": 3, "configured": 2}}
    assert not view.gap
    view.apply({"t": "exit", "seq": 6, "pid": 12, "reason": "crash"})
    assert view.gap  # seq 5 never came: the child asks for a snapshot
    assert view.exits["crash"] == 1


def test_a_clean_exit_at_max_jobs_counts_as_max_jobs():
    view = PoolView()
    view.apply(snapshot())
    message = {"t": "exit", "pid": 10, "reason": "normal"}
    assert view.exit_reason(message, Details("idle", None, 5), None) == "max_jobs"
    assert view.exit_reason(message, Details("idle", None, 1), None) == "normal"


def test_status_table_groups_by_host():
    view = PoolView()
    view.apply(snapshot())
    record = view.document({}, now=5.0)
    text = status_table({"pools": [record, {**record, "id": "i:2", "host": "i", "name": "i"}]}, now=6.0)
    assert text.splitlines()[0] == "h" and "  i (i:2) running" in text
    assert "foo" in text and "heartbeat 1.0s ago" in text
    assert status_table({"pools": []}) == "no live pool\n"


def test_socket_pair_is_seqpacket():
    master, child = protocol.socket_pair()
    assert master.type == socket.SOCK_SEQPACKET
    master.close()
    child.close()
