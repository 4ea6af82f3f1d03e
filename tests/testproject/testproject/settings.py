"""Settings for the integration tests; the tests pass the Redis and database through env."""

import os

SECRET_KEY = "tests-not-secret"
USE_TZ = True
# The admin site (the pools page, its API and metrics) only for the web tests: TEST_WEB_SITE=1.
WEB_SITE = os.environ.get("TEST_WEB_SITE") == "1"
_web_apps = ["django.contrib.admin", "django.contrib.auth", "django.contrib.sessions", "django.contrib.messages"]
_web_apps += ["django.contrib.staticfiles"]
INSTALLED_APPS = [
    *(_web_apps if WEB_SITE else []),
    "django.contrib.contenttypes",
    "django_rq",
    "django_rq_pool",
    "testapp",
]
ROOT_URLCONF = "testproject.urls" if WEB_SITE else "testapp.urls"
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "static/"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
RQ_API_TOKEN = os.environ.get("TEST_RQ_API_TOKEN", "")

_pg = os.environ.get("TEST_PG_DSN")
DATABASES = {
    "default": (
        {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("TEST_PG_NAME", "test"),
            "HOST": os.environ.get("TEST_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("TEST_PG_PORT", "5432"),
            "USER": os.environ.get("TEST_PG_USER", "postgres"),
        }
        if _pg
        else {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ.get("TEST_SQLITE_PATH", ":memory:")}
    )
}

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
RQ_QUEUES = {name: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 60} for name in ("foo", "bar", "baz", "high", "low")}
RQ_QUEUES["elsewhere"] = {"URL": REDIS_URL.rsplit("/", 1)[0] + "/14"}
if os.environ.get("TEST_RQ_QUEUES_EXTRA"):  # more queues, e.g. connection settings holding secrets
    import json

    RQ_QUEUES.update(json.loads(os.environ["TEST_RQ_QUEUES_EXTRA"]))

if os.environ.get("TEST_RQ_POOL_SETTINGS"):
    import json

    RQ_POOL = json.loads(os.environ["TEST_RQ_POOL_SETTINGS"])
if os.environ.get("TEST_LOGGING"):  # Django's LOGGING, for the tests of how job log lines come out
    import json

    LOGGING = json.loads(os.environ["TEST_LOGGING"])
if os.environ.get("TEST_RQ_POOL_HOOKS"):
    import json

    RQ_POOL_HOOKS = json.loads(os.environ["TEST_RQ_POOL_HOOKS"])
if os.environ.get("TEST_RQ_POOL_PRELOAD"):
    import json

    RQ_POOL_PRELOAD = json.loads(os.environ["TEST_RQ_POOL_PRELOAD"])
RQ_POOL_PRELOAD_DISCOVER = os.environ.get("TEST_RQ_POOL_PRELOAD_DISCOVER") == "1"

if os.environ.get("TEST_RQ_POOL_WARM"):
    RQ_POOL_WARM = os.environ["TEST_RQ_POOL_WARM"] == "1"
# Objects a large project loads and its workers never touch (its huge pages stay whole in them).
_loaded_state = [
    {"id": i, "name": f"item-{i:07d}"} for i in range(int(float(os.environ.get("TEST_STATE_MB", "0")) * 4000))
]
if os.environ.get("TEST_RQ_POOL_HUGE_PAGES"):
    RQ_POOL_HUGE_PAGES = os.environ["TEST_RQ_POOL_HUGE_PAGES"] == "1"
if os.environ.get("TEST_RQ_POOL_JOB_KILLED_TIMEOUT"):
    RQ_POOL_JOB_KILLED_TIMEOUT = float(os.environ["TEST_RQ_POOL_JOB_KILLED_TIMEOUT"])
RQ_POOL_CONTROL_QUEUE = "foo"
RQ_POOL_CONTROL_HEARTBEAT = float(os.environ.get("TEST_RQ_POOL_HEARTBEAT", "1.0"))
if os.environ.get("TEST_RQ_POOL_MAX_WORKERS"):
    RQ_POOL_MAX_WORKERS = int(os.environ["TEST_RQ_POOL_MAX_WORKERS"])
