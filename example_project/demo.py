#!/usr/bin/env python3
"""The demo: ``python3 example_project/demo.py`` (Ctrl-C stops it).

Creates .venv and installs on first run, uses the Redis at $REDIS_URL if one answers (default
redis://127.0.0.1:6379/0) or else a private redis-server for the demo's lifetime, runs
``manage.py rqpool`` with example_project/rq-pool.yml in the foreground and keeps enqueueing
demo jobs so the log shows work flowing. ``--seconds N`` stops it by itself after N seconds.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from dev.bootstrap import ensure_venv, redis_answers, start_private_redis  # noqa: E402

ENQUEUE_EVERY = 5.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0, help="stop after this many seconds (default: Ctrl-C)")
    args = parser.parse_args()
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    private = None
    if not redis_answers(url):
        private, url = start_private_redis()
        print(f"demo: no Redis at $REDIS_URL; started a private redis-server at {url}", flush=True)
    env = {**os.environ, "REDIS_URL": url, "PYTHONUNBUFFERED": "1"}
    manage = [sys.executable, str(HERE / "manage.py")]
    pool = subprocess.Popen([*manage, "rqpool", "-v", "1"], cwd=HERE, env=env)
    stop_at = time.monotonic() + args.seconds if args.seconds else None
    try:
        while pool.poll() is None and (stop_at is None or time.monotonic() < stop_at):
            subprocess.run([*manage, "enqueue_demo", "--count", "3"], cwd=HERE, env=env, check=False)
            time.sleep(ENQUEUE_EVERY)
        if pool.poll() is None:
            pool.send_signal(signal.SIGINT)
    except KeyboardInterrupt:
        print("demo: Ctrl-C: the pool finishes its jobs and stops", flush=True)
    finally:
        status = pool.wait()
        if private is not None:
            private.terminate()
            private.wait(10)
    return status


if __name__ == "__main__":
    ensure_venv(Path(__file__).resolve())
    sys.exit(main())
