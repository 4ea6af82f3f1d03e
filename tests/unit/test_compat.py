"""The shims over differences between supported releases, run against whichever release is installed.

``runtests.py --versions oldest`` runs them on the oldest releases (rq before 2.11, psutil
before 6.0), the normal run and ``--versions newest`` on the newest.
"""

from __future__ import annotations

from functools import partial

import psutil
import rq
from packaging.version import Version
from rq import Queue, Worker
from rq.executions import Execution
from rq.job import Job

from django_rq_pool.compat import execution_worker_name, inet_connections

RQ_RECORDS_WORKER_NAME = Version(rq.__version__) >= Version("2.11")


def _registered(redis_client, name: str) -> tuple[Worker, Job, Execution]:
    queue = Queue("foo", connection=redis_client)
    job = queue.enqueue("testapp.jobs.record", "compat")
    worker = Worker([queue], connection=redis_client, name=name)
    execution = worker.prepare_execution(job)
    return worker, job, Execution.fetch(execution.id, job.id, redis_client)


def _load(redis_client, job_id: str) -> Job | None:
    return Job.fetch(job_id, connection=redis_client) if redis_client.exists(f"rq:job:{job_id}") else None


def test_the_owner_of_a_registered_job_is_known_where_rq_records_it(redis_client):
    _, job, execution = _registered(redis_client, "compat-registered")
    owner = execution_worker_name(execution, partial(_load, redis_client, job.id))
    assert owner == ("compat-registered" if RQ_RECORDS_WORKER_NAME else None)


def test_the_owner_of_a_started_job_is_known_on_every_release(redis_client):
    worker, job, execution = _registered(redis_client, "compat-started")
    worker.prepare_job_execution(job)
    assert execution_worker_name(execution, partial(_load, redis_client, job.id)) == "compat-started"


def test_a_vanished_job_has_an_owner_only_where_rq_records_it(redis_client):
    _, job, execution = _registered(redis_client, "compat-vanished")
    redis_client.delete(job.key)
    owner = execution_worker_name(execution, partial(_load, redis_client, job.id))
    assert owner == ("compat-vanished" if RQ_RECORDS_WORKER_NAME else None)


def test_inet_connections_include_a_live_redis_socket(redis_client):
    redis_client.ping()
    port = redis_client.client_info()["addr"].rsplit(":", 1)[1]  # the client side, as Redis sees it
    assert int(port) in {conn.laddr.port for conn in inet_connections(psutil.Process()) if conn.laddr}
