"""The master process: one single-threaded loop that forks, reaps, handles signals and keeps
counts. It never blocks and never talks to Redis; the Redis work it needs runs in
:mod:`django_rq_pool.helpers` children."""
