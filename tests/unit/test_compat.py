"""The shims over differences between supported releases, run against whichever release is installed.

``runtests.py --versions oldest`` runs them on the oldest releases (rq before 2.11, psutil
before 6.0), the normal run and ``--versions newest`` on the newest.
"""

from __future__ import annotations

import psutil
import rq
from packaging.version import Version
from rq import Queue, SimpleWorker, Worker
from rq.executions import Execution

from django_rq_pool.compat import WORKER_SHIMS, execution_worker_name, inet_connections, runs_jobs_in_process

PoolLikeWorker = type("PoolLikeWorker", (*WORKER_SHIMS, Worker), {})


def _registered(redis_client, worker_class: type, name: str) -> Execution:
    job = Queue("foo", connection=redis_client).enqueue("testapp.jobs.record", "compat")
    worker = worker_class([Queue("foo", connection=redis_client)], connection=redis_client, name=name)
    execution = worker.prepare_execution(job)
    return Execution.fetch(execution.id, job.id, redis_client)


def test_a_pool_worker_names_its_registered_job_on_every_release(redis_client):
    assert execution_worker_name(_registered(redis_client, PoolLikeWorker, "compat-pool")) == "compat-pool"


def test_the_shim_is_mixed_in_only_where_rq_does_not_name_executions(redis_client):
    assert (WORKER_SHIMS == ()) == (Version(rq.__version__) >= Version("2.11"))
    named_by_rq = execution_worker_name(_registered(redis_client, Worker, "compat-plain"))
    assert named_by_rq == ("compat-plain" if WORKER_SHIMS == () else None)


def test_inet_connections_include_a_live_redis_socket(redis_client):
    redis_client.ping()
    port = redis_client.client_info()["addr"].rsplit(":", 1)[1]  # the client side, as Redis sees it
    assert int(port) in {conn.laddr.port for conn in inet_connections(psutil.Process()) if conn.laddr}


def test_only_simple_workers_run_jobs_in_process():
    assert runs_jobs_in_process(SimpleWorker)
    assert runs_jobs_in_process(type("MySimpleWorker", (SimpleWorker,), {}))
    assert not runs_jobs_in_process(Worker)
