"""The test project served by a real ``manage.py runserver`` for the browser and HTTP tests."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from ..harness import MANAGE, RedisServer, free_port, wait_for

PAGE = "/admin/django_rq_pool/workerpool/"
ACTION = PAGE + "action/"
API_STATUS = PAGE + "api/status.json"
API_METRICS = PAGE + "api/metrics"
TOKEN = "browser-test-token"
XSS = "<script>window.xss=1</script>"
USERS = {"admin": "admin-pw", "viewer": "viewer-pw"}
MAKE_USERS = """
from django.contrib.auth.models import Permission, User
User.objects.create_superuser("admin", password="admin-pw")
viewer = User.objects.create_user("viewer", password="viewer-pw", is_staff=True)
viewer.user_permissions.add(Permission.objects.get(codename="view_workerpool"))
"""


class LiveSite:
    """A migrated SQLite site with a superuser and a view-only user, served on a free loopback port."""

    def __init__(self, redis_server: RedisServer, workdir: Path):
        self.port = free_port()
        self.log_path = workdir / "runserver.log"
        self.env = {
            **os.environ,
            "TEST_REDIS_URL": redis_server.url,
            "TEST_SQLITE_PATH": str(workdir / "site.sqlite3"),
            "TEST_RQ_API_TOKEN": TOKEN,
            "TEST_WEB_SITE": "1",
            "PYTHONUNBUFFERED": "1",
        }
        self.process: subprocess.Popen | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def manage(self, *args: str) -> None:
        subprocess.run([sys.executable, str(MANAGE), *args], env=self.env, check=True, timeout=120)

    def start(self) -> LiveSite:
        self.manage("migrate", "-v", "0")
        self.manage("shell", "-c", MAKE_USERS)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(MANAGE), "runserver", "--noreload", "--insecure", f"127.0.0.1:{self.port}"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        wait_for(self.answers, 30, f"runserver on port {self.port}")
        return self

    def answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"runserver exited: {self.log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(self.url("/admin/login/"), timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def get(self, path: str, token: str | None = TOKEN) -> tuple[int, str]:
        """GET with the bearer token (or none): status and body."""
        request = urllib.request.Request(self.url(path), headers={"Authorization": f"Bearer {token}"} if token else {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
