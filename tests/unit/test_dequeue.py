"""The multi-queue claim (worker/dequeue.py) against a real redis-server: order, atomic placement in
the intermediate list, the blocking wait, rq's contract, and which workers claim."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from rq import Queue
from rq.exceptions import DequeueTimeout
from rq.job import Job
from rq.worker import SimpleWorker, SpawnWorker, Worker
from testapp.queues import OwnDequeueQueue

from django_rq_pool.worker import dequeue as dequeue_module
from django_rq_pool.worker.dequeue import ClaimingQueue, ClaimingWorkerMixin, HeldClaim, claiming_queue_class
from django_rq_pool.worker.doorbell import disjoint_prefixes, wake

from ..harness import done_records, url_refusing_client_tracking, wait_for


@pytest.fixture
def queues(redis_client: redis.Redis) -> dict[str, Queue]:
    return {name: Queue(name, connection=redis_client) for name in ("high", "low")}


@pytest.fixture(autouse=True)
def no_held_claim() -> None:
    HeldClaim.release()  # one slot per process: a claim left by an earlier test is not this test's


def dequeue(client: redis.Redis, order: list[Queue], timeout: int | None = None) -> tuple[Job, Queue] | None:
    """The claim, then the worker takes the job (as its execute_job does), so the next call claims anew."""
    found = ClaimingQueue.dequeue_any(order, timeout, connection=client)
    HeldClaim.release()
    return found


def test_a_claim_dropped_on_an_error_is_returned_again_not_another(redis_client, queues, monkeypatch):
    """rq dequeues again after a connection error: the worker gets the claim it already holds."""
    first = queues["high"].enqueue("testapp.jobs.record", "first")
    second = queues["high"].enqueue("testapp.jobs.record", "second")
    fetch = Job.fetch.__func__

    def fetch_once_failing(cls, job_id, *args, **kwargs):
        monkeypatch.setattr(Job, "fetch", classmethod(fetch))
        raise redis.ConnectionError("lost")

    monkeypatch.setattr(Job, "fetch", classmethod(fetch_once_failing))
    order = [queues["high"], queues["low"]]
    with pytest.raises(redis.ConnectionError):
        ClaimingQueue.dequeue_any(order, None, connection=redis_client)
    job, queue = ClaimingQueue.dequeue_any(order, None, connection=redis_client)
    assert (job.id, queue.name) == (first.id, "high")
    assert redis_client.lrange("rq:queue:high:intermediate", 0, -1) == [first.id.encode()]
    assert queues["high"].job_ids == [second.id]


def test_a_job_that_cannot_be_read_is_not_held(redis_client, queues, monkeypatch):
    """Not a transient error: the claim is left to rq's maintenance, as rq leaves such a job."""
    queues["high"].enqueue("testapp.jobs.record", "unreadable")

    def fetch_broken(cls, job_id, *args, **kwargs):
        raise ValueError("cannot deserialize")

    monkeypatch.setattr(Job, "fetch", classmethod(fetch_broken))
    with pytest.raises(ValueError):
        ClaimingQueue.dequeue_any([queues["high"]], None, connection=redis_client)
    assert HeldClaim.claim is None


def test_a_popped_job_whose_push_failed_is_pushed_once_at_the_next_dequeue(redis_client, queues):
    job_id = queues["low"].enqueue("testapp.jobs.record", "popped").id
    redis_client.lpop("rq:queue:low")
    HeldClaim.claim = ("rq:queue:low", job_id, False)  # the BLPOP returned it, the push did not land
    job, queue = ClaimingQueue.dequeue_any([queues["high"], queues["low"]], None, connection=redis_client)
    assert (job.id, queue.name) == (job_id, "low")
    HeldClaim.claim = ("rq:queue:low", job_id, False)  # the push landed but its reply was lost
    ClaimingQueue.dequeue_any([queues["high"], queues["low"]], None, connection=redis_client)
    assert redis_client.lrange("rq:queue:low:intermediate", 0, -1) == [job_id.encode()]


def test_a_held_claim_that_left_the_list_is_not_resumed(redis_client, queues):
    job_id = queues["high"].enqueue("testapp.jobs.record", "put back").id
    HeldClaim.claim = ("rq:queue:high", job_id, True)  # a janitor put it back: in the queue, not the list
    job, _ = dequeue(redis_client, [queues["high"], queues["low"]])
    assert job.id == job_id
    assert queues["high"].count == 0  # claimed anew from its queue, not resumed
    assert redis_client.lrange("rq:queue:high:intermediate", 0, -1) == [job_id.encode()]


def test_claim_takes_the_first_queue_in_order_into_its_intermediate_list(redis_client, queues):
    low = queues["low"].enqueue("testapp.jobs.record", "low")
    high = queues["high"].enqueue("testapp.jobs.record", "high")
    job, queue = dequeue(redis_client, [queues["high"], queues["low"]])
    assert (job.id, queue.name) == (high.id, "high")
    assert redis_client.lrange("rq:queue:high:intermediate", 0, -1) == [high.id.encode()]
    assert queues["high"].count == 0 and queues["low"].job_ids == [low.id]
    job, queue = dequeue(redis_client, [queues["low"], queues["high"]])  # round robin moved low first
    assert (job.id, queue.name) == (low.id, "low")
    assert dequeue(redis_client, [queues["high"], queues["low"]]) is None  # burst: empty, no wait


def test_a_job_that_is_gone_is_skipped_and_its_claim_dropped(redis_client, queues):
    gone = queues["high"].enqueue("testapp.jobs.record", "gone")
    kept = queues["low"].enqueue("testapp.jobs.record", "kept")
    redis_client.delete(gone.key)
    job, queue = dequeue(redis_client, [queues["high"], queues["low"]])
    assert (job.id, queue.name) == (kept.id, "low")
    assert redis_client.llen("rq:queue:high:intermediate") == 0


def test_blocking_wait_times_out_as_rq_does(redis_client, queues):
    started = time.monotonic()
    with pytest.raises(DequeueTimeout):
        dequeue(redis_client, [queues["high"], queues["low"]], timeout=1)
    assert 0.9 < time.monotonic() - started < 3


def test_a_job_arriving_during_the_wait_is_claimed_at_once(redis_client, redis_server, queues):
    producer = redis_server.client()

    def enqueue_once_blocked() -> None:
        wait_for(lambda: waiting_on_doorbell(producer), 10, "the wait to start")
        Queue("low", connection=producer).enqueue("testapp.jobs.record", "late")

    thread = threading.Thread(target=enqueue_once_blocked)
    thread.start()
    try:
        started = time.monotonic()
        job, queue = dequeue(redis_client, [queues["high"], queues["low"]], timeout=10)
    finally:
        thread.join()
    assert queue.name == "low" and time.monotonic() - started < 5
    assert redis_client.lrange("rq:queue:low:intermediate", 0, -1) == [job.id.encode()]


def waiting_on_doorbell(client: redis.Redis) -> bool:
    """The worker side subscribed to invalidations and sends nothing (no BLPOP: nothing is popped)."""
    commands = [c.get("cmd") for c in client.client_list()]
    return "subscribe" in commands and "blpop" not in commands


def test_the_wait_pops_nothing_and_jobs_arriving_together_are_claimed_in_priority_order(
    redis_client, redis_server, queues
):
    producer = redis_server.client()
    jobs = {}
    for name in ("low", "high"):
        jobs[name] = Job.create("testapp.jobs.record", args=(name,), connection=producer, origin=name)
        jobs[name].save()
    seen_while_waiting: list[int] = []

    def push_both_once_waiting() -> None:
        wait_for(lambda: waiting_on_doorbell(producer), 10, "the wait to start")
        seen_while_waiting.append(
            producer.llen("rq:queue:low:intermediate") + producer.llen("rq:queue:high:intermediate")
        )
        with producer.pipeline(transaction=True) as pipe:  # one write after another, atomically
            pipe.rpush("rq:queue:low", jobs["low"].id)
            pipe.rpush("rq:queue:high", jobs["high"].id)
            pipe.execute()

    thread = threading.Thread(target=push_both_once_waiting)
    thread.start()
    try:
        first = dequeue(redis_client, [queues["high"], queues["low"]], timeout=10)
    finally:
        thread.join()
    second = dequeue(redis_client, [queues["high"], queues["low"]], timeout=1)
    assert seen_while_waiting == [0]
    assert first is not None and second is not None
    assert [first[0].id, second[0].id] == [jobs["high"].id, jobs["low"].id]
    assert redis_client.lrange("rq:queue:high:intermediate", 0, -1) == [jobs["high"].id.encode()]
    assert redis_client.lrange("rq:queue:low:intermediate", 0, -1) == [jobs["low"].id.encode()]


def test_a_stop_wakes_the_wait_at_once_without_taking_a_job(redis_client, queues):
    timer = threading.Timer(0.3, wake)
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(redis.ResponseError, match=r"^UNBLOCKED"):
            dequeue(redis_client, [queues["high"], queues["low"]], timeout=10)
    finally:
        timer.join()
    assert time.monotonic() - started < 2
    assert HeldClaim.claim is None


def test_a_doorbell_whose_tracking_connection_was_closed_is_set_up_again(redis_client, redis_server, queues):
    order = [queues["high"], queues["low"]]
    with pytest.raises(DequeueTimeout):
        dequeue(redis_client, order, timeout=1)  # sets the doorbell up
    producer = redis_server.client()
    tracking = [c for c in producer.client_list() if "t" in c.get("flags", "") and c.get("cmd") != "subscribe"]
    assert len(tracking) == 1
    producer.client_kill_filter(_id=tracking[0]["id"])  # as a server's client timeout would
    test_a_job_arriving_during_the_wait_is_claimed_at_once(redis_client, redis_server, queues)


def scripts_run(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


def test_an_idle_slice_claims_once_when_the_doorbell_already_listened(redis_client, redis_server, queues, monkeypatch):
    """The doorbell set up by an earlier slice heard every write since this slice's claim: no second claim.

    A write that lands right after that claim, before the wait begins, still wakes the wait at once.
    """
    order = [queues["high"], queues["low"]]
    with pytest.raises(DequeueTimeout):
        dequeue(redis_client, order, timeout=1)  # sets the doorbell up: claims before and after
    before = scripts_run(redis_server.client())
    with pytest.raises(DequeueTimeout):
        dequeue(redis_client, order, timeout=1)
    assert scripts_run(redis_server.client()) - before == 1
    claim_first = dequeue_module.claim_first
    late: list[Job] = []

    def claim_then_a_write_lands(*args: object) -> object:
        claimed = claim_first(*args)
        if claimed is None and not late:
            late.append(queues["low"].enqueue("testapp.jobs.record", "between the claim and the wait"))
        return claimed

    monkeypatch.setattr(dequeue_module, "claim_first", claim_then_a_write_lands)
    started = time.monotonic()
    found = dequeue(redis_client, order, timeout=10)
    assert found is not None and found[0].id == late[0].id and time.monotonic() - started < 5


def test_without_client_tracking_the_wait_falls_back_to_blpop_and_asks_once(redis_client, redis_server, caplog):
    """A user Redis refuses CLIENT TRACKING (an ACL): one warning, no new connection per slice, BLPOP and the push."""
    client = redis.Redis.from_url(url_refusing_client_tracking(redis_server))
    order = [Queue(name, connection=client) for name in ("high", "low")]
    admin = redis_server.client()
    connections = []
    for _ in range(2):
        started = time.monotonic()
        with pytest.raises(DequeueTimeout):
            dequeue(client, order, timeout=1)
        assert 0.9 < time.monotonic() - started < 3
        connections.append(admin.info("stats")["total_connections_received"])
    assert connections[0] == connections[1]
    assert caplog.text.count("Redis refused CLIENT TRACKING") == 1
    late: list[Job] = []

    def enqueue_once_blocked() -> None:
        wait_for(lambda: any(c.get("cmd") == "blpop" for c in admin.client_list()), 10, "BLPOP")
        late.append(Queue("low", connection=admin).enqueue("testapp.jobs.record", "while blocked"))

    thread = threading.Thread(target=enqueue_once_blocked)
    thread.start()
    try:
        found = dequeue(client, order, timeout=10)
    finally:
        thread.join()
    assert found is not None and found[0].id == late[0].id
    assert admin.lrange("rq:queue:low:intermediate", 0, -1) == [late[0].id.encode()]


def test_overlapping_queue_keys_track_one_prefix():
    keys = ["rq:queue:foo", "rq:queue:foobar", "rq:queue:bar", "rq:queue:foo"]
    assert disjoint_prefixes(keys) == ["rq:queue:bar", "rq:queue:foo"]


def worker_class(base: type) -> type:
    return type(f"Claiming{base.__name__}", (ClaimingWorkerMixin, base), {})


def test_which_workers_claim(redis_client, caplog):
    def build(base: type, names: tuple[str, ...], queue_class: type = Queue):
        queues = [queue_class(name, connection=redis_client) for name in names]
        return worker_class(base)(queues, connection=redis_client, queue_class=queue_class)

    multi = build(Worker, ("high", "low"))
    assert multi.pool_claims and multi.queue_class is claiming_queue_class(Queue)
    assert issubclass(multi.queue_class, Queue)
    assert not build(Worker, ("high",)).pool_claims  # rq's BLMOVE already covers one queue
    assert not build(SpawnWorker, ("high", "low")).pool_claims  # its job child runs plain rq code
    own = build(Worker, ("high", "low"), OwnDequeueQueue)
    assert not own.pool_claims and own.queue_class is OwnDequeueQueue
    assert "queue class OwnDequeueQueue dequeues its own way" in caplog.text


def test_the_job_clears_its_claim_as_it_starts(redis_client, queues):
    jobs = [queues[name].enqueue("testapp.jobs.record", name) for name in ("low", "high", "low")]
    worker = worker_class(SimpleWorker)(list(queues.values()), connection=redis_client)
    worker.work(burst=True)
    assert all(job.get_status(refresh=True) == "finished" for job in jobs)
    assert [record["token"] for record in done_records(redis_client)] == ["high", "low", "low"]
    assert redis_client.llen("rq:queue:high:intermediate") == redis_client.llen("rq:queue:low:intermediate") == 0
