#!/usr/bin/env python3
"""The demo: ``python3 example_project/demo.py`` (Ctrl-C stops it).

Creates .venv and installs on first run, uses the Redis at $REDIS_URL if one answers (default
redis://127.0.0.1:6379/0) or else a private redis-server for the demo's lifetime, migrates the
example site's SQLite database, makes sure a superuser exists (``$DEMO_ADMIN_USER`` /
``$DEMO_ADMIN_PASSWORD``, default admin / admin) and prints its login, starts Django's dev server
on 127.0.0.1 (``--port``, default 8000) next to ``manage.py rqpool`` with example_project/rq-pool.yml,
prints the URL of the worker pools page, and keeps enqueueing demo jobs so work flows.
``--seconds N`` stops it by itself after N seconds.
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
ENSURE_ADMIN = """
import os
from django.contrib.auth import get_user_model
name, password = os.environ["DEMO_ADMIN_USER"], os.environ["DEMO_ADMIN_PASSWORD"]
user = get_user_model().objects.filter(username=name).first() or get_user_model()(username=name)
user.is_staff = user.is_superuser = user.is_active = True
user.set_password(password)
user.save()
"""


def stop(process: subprocess.Popen, interrupted: bool, timeout: float = 60) -> int:
    """Stop a child with SIGINT unless the terminal's Ctrl-C already reached it, and reap it."""
    if not interrupted and process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0, help="stop after this many seconds (default: Ctrl-C)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", "8000")), help="web port")
    args = parser.parse_args()
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    private = None
    if not redis_answers(url):
        private, url = start_private_redis()
        print(f"demo: no Redis at $REDIS_URL; started a private redis-server at {url}", flush=True)
    login = {
        "DEMO_ADMIN_USER": os.environ.get("DEMO_ADMIN_USER") or "admin",
        "DEMO_ADMIN_PASSWORD": os.environ.get("DEMO_ADMIN_PASSWORD") or "admin",
    }
    env = {**os.environ, **login, "REDIS_URL": url, "PYTHONUNBUFFERED": "1"}
    manage = [sys.executable, str(HERE / "manage.py")]
    pool = web = None
    status = 0
    interrupted = False
    try:
        subprocess.run([*manage, "migrate", "-v", "0"], cwd=HERE, env=env, check=True)
        subprocess.run([*manage, "shell", "-c", ENSURE_ADMIN], cwd=HERE, env=env, check=True)
        pool = subprocess.Popen([*manage, "rqpool", "-v", "1"], cwd=HERE, env=env)
        address = f"127.0.0.1:{args.port}"
        web = subprocess.Popen([*manage, "runserver", "--noreload", "--insecure", address], cwd=HERE, env=env)
        print(
            f"demo: log in as {login['DEMO_ADMIN_USER']} / {login['DEMO_ADMIN_PASSWORD']} and open\n"
            f"demo:   http://{address}/admin/django_rq_pool/workerpool/\n"
            "demo: Ctrl-C stops the web server and the pool (it finishes its jobs first)",
            flush=True,
        )
        stop_at = time.monotonic() + args.seconds if args.seconds else None
        while pool.poll() is None and web.poll() is None and (stop_at is None or time.monotonic() < stop_at):
            subprocess.run([*manage, "enqueue_demo", "--count", "3"], cwd=HERE, env=env, check=False)
            time.sleep(ENQUEUE_EVERY)
    except KeyboardInterrupt:
        interrupted = True
        print("demo: Ctrl-C: the pool finishes its jobs and stops", flush=True)
    finally:
        if web is not None:
            stop(web, interrupted)
        if pool is not None:
            status = stop(pool, interrupted)
        if private is not None:
            private.terminate()
            private.wait(10)
    return status


if __name__ == "__main__":
    ensure_venv(Path(__file__).resolve())
    sys.exit(main())
