"""The master's slot bookkeeping, without processes: which slots a list misses, which workers are surplus."""

from __future__ import annotations

from django_rq_pool.config.plan import QueueGroup
from django_rq_pool.hooks import WorkerContext
from django_rq_pool.master.roster import Roster, WorkerRecord

FOO = QueueGroup(("foo",), 3)
BAR = QueueGroup(("bar",), 1)


def _record(pid: int, group: QueueGroup, index: int, started: float = 0.0) -> WorkerRecord:
    return WorkerRecord(pid, WorkerContext(group, index, f"w{pid}", 1), started)


def _started(roster: Roster, *groups: QueueGroup) -> list[WorkerRecord]:
    records = []
    for group in groups:
        for index in roster.missing(group.identity):
            records.append(_record(100 + len(records), group, index, float(len(records))))
            roster.add(records[-1])
    return records


def test_a_new_plan_marks_every_list_and_names_every_slot():
    roster = Roster()
    roster.plan((FOO, BAR))
    assert roster.take_changed() == {FOO.identity, BAR.identity}
    assert roster.missing(FOO.identity) == [0, 1, 2]
    _started(roster, FOO, BAR)
    assert roster.live == 4 and roster.missing(FOO.identity) == []
    assert roster.take_changed() == set()


def test_an_exit_frees_its_slot_and_marks_only_its_list():
    roster = Roster()
    roster.plan((FOO, BAR))
    records = _started(roster, FOO, BAR)
    roster.take_changed()
    version = roster.version
    assert roster.remove(records[1].pid) is records[1]
    assert roster.take_changed() == {FOO.identity}
    assert roster.missing(FOO.identity) == [1]
    assert roster.live == 3 and roster.version == version + 1
    assert roster.remove(4242) is None  # not a worker (a janitor, a stray)


def test_a_retired_worker_gives_up_its_slot_once():
    roster = Roster()
    roster.plan((FOO,))
    records = _started(roster, FOO)
    roster.retire(records[0])
    roster.retire(records[0])
    assert roster.live == 2 and records[0].stopping
    assert roster.missing(FOO.identity) == [0]
    roster.add(_record(200, FOO, 0))
    roster.remove(records[0].pid)  # the old worker exits after its replacement took the slot
    assert roster.live == 3 and roster.missing(FOO.identity) == []
    assert records[0].pid not in roster.records


def test_a_smaller_count_makes_the_highest_slots_surplus_and_an_unplanned_list_all_surplus():
    roster = Roster()
    roster.plan((FOO, BAR))
    records = _started(roster, FOO, BAR)
    roster.plan((QueueGroup(("foo",), 1),))
    assert roster.surplus(FOO.identity) == [records[2], records[1]]
    assert roster.surplus(BAR.identity) == [records[3]]
    for record in records[1:3]:
        roster.retire(record)
    roster.remove(records[2].pid)
    assert roster.missing(FOO.identity) == []  # slots 1 and 2 are beyond the new count: nothing to refill


def test_ttou_then_ttin_keeps_slots_within_the_count():
    """The workers left after a smaller count hold slots 0 .. count-1, so a larger count adds the next ones."""
    roster = Roster()
    roster.plan((FOO,))
    records = _started(roster, FOO)
    roster.plan((QueueGroup(("foo",), 2),))
    (gone,) = roster.surplus(FOO.identity)
    roster.retire(gone)
    assert gone.context.index == 2
    roster.plan((QueueGroup(("foo",), 3),))
    assert roster.missing(FOO.identity) == [2]
    assert {r.context.index for r in records if not r.stopping} == {0, 1}


def test_a_larger_count_adds_slots_after_the_held_ones():
    roster = Roster()
    roster.plan((FOO,))
    _started(roster, FOO)
    roster.plan((QueueGroup(("foo",), 5),))
    assert roster.missing(FOO.identity) == [3, 4]


def test_a_list_gone_from_the_plan_is_forgotten_once_its_workers_are():
    roster = Roster()
    roster.plan((FOO, BAR))
    records = _started(roster, FOO, BAR)
    roster.plan((FOO,))
    roster.retire(records[3])
    roster.remove(records[3].pid)
    roster.take_changed()
    roster.plan((FOO,))
    assert roster.take_changed() == {FOO.identity}
    assert roster.holders(BAR.identity) == [] and roster.missing(BAR.identity) == []
