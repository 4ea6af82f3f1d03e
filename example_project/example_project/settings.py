"""Settings for the example project: three queues on the Redis at $REDIS_URL."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "example-project-not-secret"
DEBUG = False
ALLOWED_HOSTS: list[str] = []
USE_TZ = True

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django_rq",
    "django_rq_pool",
    "demo",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("EXAMPLE_DB", str(BASE_DIR / "db.sqlite3")),
    }
}

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
RQ_QUEUES = {name: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 360} for name in ("foo", "bar", "baz")}
RQ_POOL_CONTROL_QUEUE = "foo"  # the control plane keeps its registry in foo's Redis (docs/control.md)
