"""Exit statuses: the master's (documented for operators) and a worker's (read by the master).

Both sides of each status must agree, so they live here rather than in either process's code.
"""

# The master (``manage.py rqpool``)
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_GAVE_UP = 3
EXIT_PIDFILE = 4
EXIT_FORCED = 5  # a stop had to SIGKILL workers that ignored it

# A worker
WORKER_HOOK_FAILED = 3  # its after_prefork hook raised: it never took a job
WORKER_BOOT_FAILED = 4
WORKER_LEFT_A_JOB = 5  # rq's loop quit on an error with a dequeued job not yet run: the janitor puts it back
