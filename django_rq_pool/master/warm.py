"""Build in the master what Django otherwise builds lazily in every job child.

A job child is forked from its worker for each job and exits after it, so whatever Django builds
on first use (the URL resolver, template engines, the translation catalogue) is built again for
every job that needs it, unless the master built it once before forking. A project whose URLconf
takes seconds to import otherwise pays those seconds in every job that calls ``reverse()``.

On by default; ``settings.RQ_POOL_WARM = False`` turns it off. Each step is timed and logged. A
step that fails is logged and skipped: the jobs then build that part themselves, as without
warming (``manage.py check`` and rqpool's system checks report a broken URLconf or template setup).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.conf import settings

log = logging.getLogger(__name__)
SETTING = "RQ_POOL_WARM"


def url_resolver() -> str:
    """Populate the root resolver for LANGUAGE_CODE, which populates every included URLconf's."""
    from django.urls import get_resolver
    from django.utils import translation

    if not getattr(settings, "ROOT_URLCONF", None):
        return "no ROOT_URLCONF"
    resolver = get_resolver()
    with translation.override(settings.LANGUAGE_CODE):
        patterns = len(resolver.reverse_dict)  # reverse() reads this, keyed by the active language
        resolver.namespace_dict  # noqa: B018  (namespaced reverse())
        resolver.app_dict  # noqa: B018
    return f"{settings.ROOT_URLCONF}, {patterns} names"


def template_engines() -> str:
    """Create every engine (importing its tag libraries) and its loaders."""
    from django.template import engines

    built = []
    for engine in engines.all():
        inner = getattr(engine, "engine", None)  # DjangoTemplates wraps a django.template.Engine
        loaders = inner.template_loaders if inner is not None else []
        built.append(f"{engine.name} ({len(loaders)} loaders)" if inner is not None else engine.name)
    return ", ".join(built) or "none configured"


def translation_catalogue() -> str:
    """Load LANGUAGE_CODE's catalogue: what gettext() uses when no language is activated."""
    if not settings.USE_I18N:
        return "USE_I18N is off"
    from django.utils import translation

    translation.gettext("")  # loads and caches the default catalogue
    with translation.override(settings.LANGUAGE_CODE):
        translation.gettext("")
    return settings.LANGUAGE_CODE


STEPS: tuple[tuple[str, Callable[[], str]], ...] = (
    ("URL resolver", url_resolver),
    ("template engines", template_engines),
    ("translation catalogue", translation_catalogue),
)


def warm_django() -> float:
    """Run every warming step unless the setting turns it off; returns the seconds spent."""
    if not getattr(settings, SETTING, True):
        log.info("warming Django's lazy caches is off (settings.%s)", SETTING)
        return 0.0
    total = 0.0
    for name, step in STEPS:
        started = time.perf_counter()
        try:
            what = step()
        except Exception as exc:
            log.warning("warming the %s failed (%s: %s); each job builds it for itself", name, type(exc).__name__, exc)
            continue
        spent = time.perf_counter() - started
        total += spent
        log.info("warmed the %s in %.3fs: %s", name, spent, what)
    return total
