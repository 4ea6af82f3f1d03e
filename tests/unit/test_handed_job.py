"""The job a waiting child receives: rebuilt from the fields the worker sends, with no Redis round trip."""

from __future__ import annotations

import pickle

import pytest
import redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from django_rq_pool.worker.handed_job import job_fields, restored_job


class TaggedJob(Job):
    """A custom job_class that stores a field of its own."""

    tag = ""

    def to_dict(self, *args, **kwargs):
        return {**super().to_dict(*args, **kwargs), "tag": self.tag}

    def restore(self, raw_data):
        super().restore(raw_data)
        self.tag = raw_data.get(b"tag", b"").decode()


def closed_connection() -> redis.Redis:
    """A client whose every command fails: the rebuild must not need one."""
    return redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.1)


@pytest.mark.parametrize(
    ("job_class", "serializer"),
    [(Job, None), (Job, JSONSerializer), (TaggedJob, None)],
    ids=["default", "json-serializer", "custom-job-class"],
)
def test_the_rebuilt_job_is_the_one_a_fetch_gives(redis_client, job_class, serializer):
    queue = Queue("foo", connection=redis_client, job_class=job_class, serializer=serializer)
    parent = queue.enqueue("testapp.jobs.record", "parent")
    job = job_class.create(
        "testapp.jobs.record",
        args=("handed", 3),
        kwargs={"k": [1, "two"]},
        connection=redis_client,
        serializer=serializer,
        meta={"progress": 7},
        timeout=45,
        result_ttl=600,
        description="handed over",
        depends_on=parent,
        origin="foo",
    )
    # What Retry(max=2, interval=[1, 5]) sets: rq 2.6's create() takes no retry.
    job.retries_left, job.retry_intervals = 2, [1, 5]
    if isinstance(job, TaggedJob):
        job.tag = "mine"
    job.save()
    fetched = job_class.fetch(job.id, connection=redis_client, serializer=serializer)
    assert job_fields(fetched) == redis_client.hgetall(fetched.key)  # what HGETALL returns, byte for byte

    sent = pickle.loads(pickle.dumps(job_fields(fetched)))  # over the pipe
    rebuilt = restored_job(job_class, fetched.id, sent, closed_connection(), serializer)
    assert type(rebuilt) is job_class
    assert rebuilt.to_dict() == fetched.to_dict()
    assert (rebuilt.func_name, rebuilt.args, rebuilt.kwargs) == (fetched.func_name, fetched.args, fetched.kwargs)
    assert list(rebuilt.args) == ["handed", 3]
    assert rebuilt.meta == {"progress": 7}
    assert rebuilt._dependency_ids == [parent.id]  # the property asks Redis
    assert (rebuilt.retries_left, rebuilt.retry_intervals) == (2, [1, 5])
    assert getattr(rebuilt, "tag", "") == getattr(fetched, "tag", "")
