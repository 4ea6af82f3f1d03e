"""The dequeued job as the waiting job child receives it: its stored fields, rebuilt without Redis.

A job child forked after the dequeue inherits the worker's job object. The waiting child was forked
before, so the worker sends it the job's hash as Redis holds it: ``to_dict()``, each name and value encoded
by the connection's own encoder, which is what ``HGETALL`` returns after ``save()`` wrote
``to_dict()``. The child rebuilds it as ``Job.fetch`` does (the class, then ``restore``) minus the
round trip. ``to_dict``/``restore`` are the pair every rq version and every ``job_class`` keeps
symmetric (``save`` writes one, ``fetch`` reads the other), with the job's own serializer for
``meta``. The worker changes nothing of the job between its fetch and the fork, so the fields are
those the fetch read.
"""

from __future__ import annotations

from typing import Any


def job_fields(job: Any) -> dict[bytes, bytes]:
    """In the worker: the job's hash, as ``HGETALL`` on its key would return it."""
    encode = job.connection.get_encoder().encode
    return {encode(name): encode(value) for name, value in job.to_dict().items()}


def restored_job(job_class: type, job_id: str, fields: dict[bytes, bytes], connection: Any, serializer: Any) -> Any:
    """In the waiting child: the job ``job_class.fetch(job_id)`` would give, from its fields."""
    job = job_class(job_id, connection=connection, serializer=serializer)
    job.restore(fields)
    return job
