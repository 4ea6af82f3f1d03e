"""The demo command: a real site and a real pool from one command, and Ctrl-C stops everything."""

from __future__ import annotations

import contextlib
import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from ..harness import ROOT, TOKEN_VAR, RedisServer, _writes_to, free_port, wait_for

DEMO = ROOT / "example_project" / "demo.py"


class Demo:
    def __init__(self, redis_server: RedisServer, workdir: Path):
        self.port = free_port()
        self.token = f"demo-{self.port}"
        self.log_path = workdir / "demo.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},  # the example's own
            "REDIS_URL": redis_server.url,
            "EXAMPLE_DB": str(workdir / "demo.sqlite3"),
            "DEMO_ADMIN_USER": "demo-admin",
            "DEMO_ADMIN_PASSWORD": "demo-pw",
            TOKEN_VAR: self.token,
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> Demo:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(DEMO), "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a terminal of its own: Ctrl-C is SIGINT to the group
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def shows(self, text: str) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the demo exited with {self.process.returncode}:\n{self.log()[-3000:]}")
        return text in self.log()

    def processes(self) -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter(["pid"]):
            with contextlib.suppress(psutil.Error):
                if proc.pid == os.getpid() or proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                if proc.environ().get(TOKEN_VAR) == self.token or _writes_to(proc.pid, str(self.log_path)):
                    found.append(proc)
        return found

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for _ in range(20):
            leftovers = self.processes()
            if not leftovers:
                return
            for proc in leftovers:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            psutil.wait_procs(leftovers, timeout=2)


@pytest.fixture
def demo(redis_client, redis_server: RedisServer, tmp_path: Path) -> Iterator[Demo]:
    running = Demo(redis_server, tmp_path)
    try:
        yield running
    finally:
        running.cleanup()


def log_in(base: str, user: str, password: str) -> urllib.request.OpenerDirector:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(f"{base}/admin/login/", timeout=10) as response:
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.read().decode()).group(1)
    form = urllib.parse.urlencode({"csrfmiddlewaretoken": token, "username": user, "password": password})
    opener.open(f"{base}/admin/login/?next=/admin/", form.encode(), timeout=10).close()
    return opener


def test_the_demo_serves_the_page_next_to_the_pool_and_ctrl_c_stops_everything(demo: Demo) -> None:
    demo.start()
    url = f"http://127.0.0.1:{demo.port}/admin/django_rq_pool/workerpool/"
    wait_for(lambda: demo.shows(url), 120, "the page's URL in the demo's output")
    assert "log in as demo-admin / demo-pw" in demo.log()

    def fragment() -> str:
        try:
            opener = log_in(f"http://127.0.0.1:{demo.port}", "demo-admin", "demo-pw")
            with opener.open(url + "fragment/", timeout=10) as response:
                return response.read().decode()
        except OSError:
            return ""

    shown = wait_for(lambda: 'data-list="foo,bar,baz"' in (page := fragment()) and page, 60, "the pool on the page")
    assert 'aria-label="Add a worker to foo,bar,baz"' in shown
    assert demo.process is not None
    os.killpg(demo.process.pid, signal.SIGINT)
    assert demo.process.wait(60) == 0, demo.log()[-3000:]
    wait_for(lambda: not demo.processes(), 30, "every process of the demo to exit")
    assert "Traceback" not in demo.log()
