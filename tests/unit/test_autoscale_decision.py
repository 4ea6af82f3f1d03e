"""The autoscaling decision: formula, hysteresis, busy floor, memory budget and sharing across pools."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from django_rq_pool.config.plan import Autoscale
from django_rq_pool.control.autoscale.decision import Inputs, ListScaler
from django_rq_pool.control.autoscale.sharing import Member, split
from django_rq_pool.control.autoscale.window import ScaleDownWindow

MIB = 2**20


def test_a_spike_goes_to_max_at_once():
    scaler = ListScaler(Autoscale(1, 16))
    decision = scaler.decide(Inputs(backlog=2000, busy=1, current=1), now=0.0)
    assert (decision.desired, decision.need, decision.share) == (16, 2001, 16)
    assert decision.reason == "scale up: 1 -> 16 (backlog 2000, busy 1, need 2001, share 16, bounds 1..16)"


def test_a_small_backlog_asks_for_just_enough_workers():
    scaler = ListScaler(Autoscale(1, 16))
    assert scaler.decide(Inputs(backlog=2, busy=1, current=1), 0.0).desired == 3


def test_scale_from_zero_on_the_first_job():
    scaler = ListScaler(Autoscale(0, 4))
    assert scaler.decide(Inputs(backlog=0, busy=0, current=0), 0.0).desired == 0
    assert scaler.decide(Inputs(backlog=1, busy=0, current=0), 0.1).desired == 1


def test_scale_down_only_after_the_delay_without_need():
    scaler = ListScaler(Autoscale(1, 16, scale_down_delay=30))
    assert scaler.decide(Inputs(backlog=100, busy=0, current=1), 0.0).desired == 16
    for second in range(1, 31):
        decision = scaler.decide(Inputs(backlog=0, busy=0, current=16), float(second))
        assert decision.desired == 16, second
    assert "steady, down to 1 in 0s without more need" in decision.reason
    later = scaler.decide(Inputs(backlog=0, busy=0, current=16), 30.5)
    assert later.desired == 1 and later.reason.startswith("scale down: 16 -> 1")


def test_a_new_need_restarts_the_delay():
    scaler = ListScaler(Autoscale(1, 8, scale_down_delay=10))
    scaler.decide(Inputs(backlog=7, busy=0, current=1), 0.0)  # 7 wanted
    scaler.decide(Inputs(backlog=3, busy=0, current=7), 8.0)  # a smaller need: 3 wanted at 8 s
    assert scaler.decide(Inputs(backlog=0, busy=0, current=7), 10.5).desired == 3  # 7 aged out, 3 still counts
    assert scaler.decide(Inputs(backlog=0, busy=0, current=3), 18.5).desired == 1


def test_no_flapping_at_a_steady_load_whose_backlog_flickers():
    scaler = ListScaler(Autoscale(1, 16, scale_down_delay=30))
    current, counts = 1, []
    for tick in range(600):  # 2 minutes of decisions every 0.2 s, the need going 3, 5, 3, 5, ...
        backlog = 1 if tick % 2 == 0 else 3
        current = scaler.decide(Inputs(backlog=backlog, busy=2, current=current), tick * 0.2).desired
        counts.append(current)
    assert counts[:2] == [3, 5] and set(counts[1:]) == {5}


def test_a_busy_worker_is_never_asked_to_stop():
    scaler = ListScaler(Autoscale(1, 16, scale_down_delay=1))
    assert scaler.decide(Inputs(backlog=0, busy=5, current=10), 0.0).desired == 10
    decision = scaler.decide(Inputs(backlog=0, busy=5, current=10), 1.5)
    assert decision.desired == 5  # only the 5 idle workers retire


def test_a_count_the_scaler_did_not_ask_for_lasts_the_delay_too():
    scaler = ListScaler(Autoscale(1, 16, scale_down_delay=10))
    assert scaler.decide(Inputs(backlog=0, busy=0, current=4), 0.0).desired == 4  # the starting count
    assert scaler.decide(Inputs(backlog=0, busy=0, current=4), 9.0).desired == 4
    assert scaler.decide(Inputs(backlog=0, busy=0, current=4), 10.5).desired == 1
    assert scaler.decide(Inputs(backlog=0, busy=0, current=3), 11.0).desired == 3  # a TTIN-like change
    assert scaler.decide(Inputs(backlog=0, busy=0, current=3), 21.5).desired == 1


def test_memory_at_or_over_the_budget_holds_scale_ups_not_scale_downs():
    scaler = ListScaler(Autoscale(1, 16, scale_down_delay=0))
    full = Inputs(backlog=50, busy=2, current=2, memory_used=4096 * MIB, memory_budget=4096 * MIB)
    decision = scaler.decide(full, 0.0)
    assert decision.held_by_memory and decision.desired == 2
    assert decision.reason.startswith("scale-up held by memory: 2 -> 2 (")
    assert "memory 4096 of 4096 MiB" in decision.reason
    over = Inputs(backlog=0, busy=0, current=2, memory_used=5000 * MIB, memory_budget=4096 * MIB)
    assert scaler.decide(over, 1.0).desired == 1


def test_memory_never_holds_a_list_below_its_min():
    scaler = ListScaler(Autoscale(4, 16))  # e.g. a reload raised min while the pool was over budget
    over = Inputs(backlog=0, busy=0, current=1, memory_used=5000 * MIB, memory_budget=4096 * MIB)
    assert scaler.decide(over, 0.0).desired == 4


def test_memory_below_the_budget_admits_as_many_workers_as_fit():
    scaler = ListScaler(Autoscale(1, 16))
    near = Inputs(
        backlog=50, busy=1, current=1, memory_used=900 * MIB, memory_budget=1000 * MIB, worker_memory=40 * MIB
    )
    decision = scaler.decide(near, 0.0)
    assert (decision.desired, decision.held_by_memory) == (3, True)
    roomy = Inputs(backlog=5, busy=1, current=1, memory_used=100 * MIB, memory_budget=1000 * MIB, worker_memory=MIB)
    assert ListScaler(Autoscale(1, 16)).decide(roomy, 0.0).desired == 6


def test_two_pools_seeing_the_same_registry_split_a_spike():
    bounds = Autoscale(1, 16)
    a, b = ListScaler(bounds), ListScaler(bounds)
    desired_a = a.decide(Inputs(backlog=10, busy=0, current=1, pool_id="a", peers=(Member("b", 0, 1, 16),)), 0.0)
    desired_b = b.decide(Inputs(backlog=10, busy=0, current=1, pool_id="b", peers=(Member("a", 0, 1, 16),)), 0.0)
    assert (desired_a.desired, desired_b.desired) == (5, 5)
    assert "1 other pools (busy 0)" in desired_a.reason
    alone_at_max = b.decide(Inputs(backlog=40, busy=0, current=5, pool_id="b", peers=(Member("a", 0, 1, 16),)), 1.0)
    assert alone_at_max.desired == 16  # 40 between two pools of max 16: both go to max


def test_workers_another_pool_already_asked_for_count_as_its_capacity():
    scaler = ListScaler(Autoscale(0, 16))
    starting = Member("a", busy=0, min=0, max=16, desired=4)  # its 4 workers are starting: they will take 4 jobs
    assert scaler.decide(Inputs(backlog=4, busy=0, current=0, pool_id="b", peers=(starting,)), 0.0).desired == 0
    assert scaler.decide(Inputs(backlog=8, busy=0, current=0, pool_id="b", peers=(starting,)), 0.1).desired == 2


def test_a_fixed_peer_counts_as_capacity():
    scaler = ListScaler(Autoscale(0, 16))
    fixed_peer = Member("a-fixed", busy=0, min=4, max=4)  # four idle workers that take jobs too
    assert scaler.decide(Inputs(backlog=3, busy=0, current=0, pool_id="b", peers=(fixed_peer,)), 0.0).desired == 0
    assert scaler.decide(Inputs(backlog=6, busy=0, current=0, pool_id="b", peers=(fixed_peer,)), 0.0).desired == 2


members = st.lists(
    st.tuples(st.integers(0, 20), st.integers(0, 10), st.integers(0, 20)).map(
        lambda t: (t[0], min(t[1], t[2]), t[2])  # busy, min <= max
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(members, st.integers(0, 500))
def test_split_gives_each_pool_its_floor_and_the_rest_of_the_need_up_to_the_maxes(specs, backlog):
    pool = [Member(f"p{i}", busy, low, high) for i, (busy, low, high) in enumerate(specs)]
    need = backlog + sum(m.busy for m in pool)
    shares = split(need, pool)
    floors = sum(m.floor for m in pool)
    assert sum(shares.values()) == max(floors, min(need, sum(m.max for m in pool)))
    for member in pool:
        assert member.floor <= shares[member.pool_id] <= member.max


def test_cooperating_pools_stay_within_the_need_plus_one_worker_each_under_a_spike():
    """Three pools, each seeing the others' busy counts as the registry showed them one tick earlier.

    The total stays within the highest need of the scale-down delay plus one worker per pool: the
    hysteresis keeps workers after the need falls, but no pool jumps to its max on its own.
    """
    bounds = Autoscale(0, 16, scale_down_delay=0.5)
    ids = ("host-a:1", "host-b:1", "host-c:1")
    scalers = {pool: ListScaler(bounds) for pool in ids}
    desired = dict.fromkeys(ids, 0)
    busy = dict.fromkeys(ids, 0)
    running: dict[str, list[int]] = {pool: [] for pool in ids}  # ticks left of each running job
    backlog, needs = 0, []
    for tick in range(200):
        if tick < 40:
            backlog += 6  # jobs of 4 ticks arriving faster than 16 workers could keep up with at first
        registry = {p: (busy[p], desired[p]) for p in ids}  # what the others see: last tick's records
        for pool in ids:
            peers = tuple(Member(p, *registry[p][:1], bounds.min, bounds.max, registry[p][1]) for p in ids if p != pool)
            inputs = Inputs(backlog=backlog, busy=busy[pool], current=desired[pool], pool_id=pool, peers=peers)
            desired[pool] = scalers[pool].decide(inputs, tick * 0.1).desired
        needs.append(backlog + sum(busy.values()))
        recent_need = max(needs[-6:])  # the delay is 5 ticks of 0.1 s
        assert sum(desired.values()) <= recent_need + len(ids), (tick, desired, needs[-6:])
        assert max(desired.values()) < bounds.max or sum(desired.values()) <= 2 * bounds.max
        for pool in ids:
            running[pool] = [left - 1 for left in running[pool] if left > 1]
        while backlog:  # every idle worker of every pool competes for the queue: the idlest pool wins
            pool = max(ids, key=lambda p: desired[p] - len(running[p]))
            if desired[pool] <= len(running[pool]):
                break
            running[pool].append(4)
            backlog -= 1
        busy = {pool: len(jobs) for pool, jobs in running.items()}
    assert backlog == 0 and all(count == 0 for count in desired.values())


def test_window_keeps_the_maximum_of_the_delay():
    window = ScaleDownWindow(10)
    assert window.record(0, 5) == 5
    assert window.record(3, 2) == 5
    assert window.falls_below(5) == 10 and window.falls_below(3) == 10 and window.falls_below(6) is None
    assert window.record(10.5, 1) == 2
    assert window.record(13.5, 1) == 1
    assert ScaleDownWindow(0).record(1, 3) == 3 and ScaleDownWindow(0).record(2, 0) == 0
