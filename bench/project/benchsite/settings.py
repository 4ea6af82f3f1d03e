"""Settings of the benchmark site: one queue on the bench's private Redis (``BENCH_REDIS_URL``)."""

import os

SECRET_KEY = "bench-not-secret"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_rq",
    "django_rq_pool",
    "benchapp",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
RQ_QUEUES = {"bench": {"URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"), "DEFAULT_TIMEOUT": 60}}
RQ_QUEUES.update({name: RQ_QUEUES["bench"] for name in ("bench2", "bench3")})  # the autoscaling bench's idle lists
# Only rqpool has this feature: its master imports the job modules once, before forking.
# BENCH_PRELOAD=0 turns it off, to see what it is worth.
PRELOAD = os.environ.get("BENCH_PRELOAD", "1") == "1"
RQ_POOL_PRELOAD = ["benchapp.jobs_trivial", "benchapp.jobs_realistic", "benchapp.jobs_sleep"] if PRELOAD else []

# For the Django-heavy job: a URLconf slow to import, templates, a translation catalogue.
ROOT_URLCONF = "benchapp.urls"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
USE_I18N = True
LANGUAGE_CODE = "de"
# rqpool warms Django's lazy caches before forking; BENCH_WARM=0 turns that off, to see what it is worth.
RQ_POOL_WARM = os.environ.get("BENCH_WARM", "1") == "1"
# rqpool maps its memory with huge pages before forking; BENCH_HUGE_PAGES=0 turns that off.
RQ_POOL_HUGE_PAGES = os.environ.get("BENCH_HUGE_PAGES", "1") == "1"
RQ_POOL_CONTROL_QUEUE = "bench"  # the registry of the control plane (docs/control.md)
