"""Build in the master what Django otherwise builds lazily in every job child.

A job child is forked from its worker for each job and exits after it, so whatever Django builds
on first use (the URL resolvers, template engines and compiled templates, the translation
catalogue and the locale's formats) is built again for
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
from pathlib import Path
from typing import Any

from django.conf import settings

from django_rq_pool.master.regexes import warm_regexes
from django_rq_pool.master.sample_render import render_sample

log = logging.getLogger(__name__)
SETTING = "RQ_POOL_WARM"


def url_resolver() -> str:
    """Populate the root resolver for LANGUAGE_CODE, and every namespaced one reverse() would use.

    The root's population covers included URLconfs without a namespace; a namespaced include is a
    resolver of its own, populated on its first ``reverse("ns:name")``, and reverse() then builds
    (and caches) a resolver for the namespace's prefix: both are built here too.
    """
    if not getattr(settings, "ROOT_URLCONF", None):
        return "no ROOT_URLCONF"
    names = sum(len(resolver.reverse_dict) for resolver in reverse_resolvers())
    return f"{settings.ROOT_URLCONF}, {names} names"


def reverse_resolvers() -> list[Any]:
    """The root resolver and, for each ``ns:...`` path, the one reverse() uses; populated for LANGUAGE_CODE."""
    from django.urls import get_resolver
    from django.utils import translation

    if not getattr(settings, "ROOT_URLCONF", None):
        return []
    with translation.override(settings.LANGUAGE_CODE):  # reverse() reads the active language's tables
        root = get_resolver()
        found = [root]
        _namespaced(root, "", {}, found)
        for resolver in found:
            resolver.reverse_dict  # noqa: B018
    return found


def _namespaced(resolver: Any, prefix: str, converters: dict, found: list[Any]) -> None:
    """What django.urls.reverse() builds for each ``ns:...`` path, depth first."""
    from django.urls.resolvers import get_ns_resolver

    resolver.app_dict  # noqa: B018
    for extra, sub in resolver.namespace_dict.values():
        sub_prefix = prefix + extra
        sub_converters = {**converters, **sub.pattern.converters}
        sub.reverse_dict  # noqa: B018
        found.append(get_ns_resolver(sub_prefix, sub, tuple(sub_converters.items())))
        _namespaced(sub, sub_prefix, sub_converters, found)


def template_engines() -> str:
    """Create every engine (importing its tag libraries) and its loaders."""
    from django.template import engines

    built = []
    for engine in engines.all():
        inner = getattr(engine, "engine", None)  # DjangoTemplates wraps a django.template.Engine
        loaders = inner.template_loaders if inner is not None else []
        built.append(f"{engine.name} ({len(loaders)} loaders)" if inner is not None else engine.name)
    return ", ".join(built) or "none configured"


def compiled_templates() -> str:
    """Compile every template the Django engines' cached loaders can find, into their caches.

    Without this, each job child parses a template again on its first render (each is a fresh
    fork). A file that is not a valid template is skipped: rendering it would fail anyway.
    """
    from django.template import TemplateSyntaxError, engines
    from django.template.loaders.cached import Loader as CachedLoader

    compiled = skipped = 0
    for engine in engines.all():
        inner = getattr(engine, "engine", None)
        if inner is None:
            continue
        for loader in inner.template_loaders:
            if not isinstance(loader, CachedLoader):
                continue  # nothing would keep what is compiled
            for name in _template_names(loader):
                try:
                    inner.get_template(name)
                    compiled += 1
                except (TemplateSyntaxError, UnicodeDecodeError, OSError):
                    skipped += 1
    return f"{compiled} templates" + (f", {skipped} files skipped (not valid templates)" if skipped else "")


def _template_names(loader: Any) -> list[str]:
    """Names of every file under the directories of a cached loader's own loaders, first dir first."""
    seen: dict[str, None] = {}
    for inner in loader.loaders:
        get_dirs = getattr(inner, "get_dirs", None)
        for directory in get_dirs() if callable(get_dirs) else ():
            root = Path(directory)
            if root.is_dir():
                for path in sorted(root.rglob("*")):
                    if path.is_file():
                        seen.setdefault(path.relative_to(root).as_posix(), None)
    return list(seen)


def translation_catalogue() -> str:
    """Load LANGUAGE_CODE's catalogue: what gettext() uses when no language is activated."""
    if not settings.USE_I18N:
        return "USE_I18N is off"
    from django.utils import formats, translation

    translation.gettext("")  # loads and caches the default catalogue
    with translation.override(settings.LANGUAGE_CODE):
        translation.gettext("")
    for name in formats.FORMAT_SETTINGS:  # the locale's date and number formats, imported and cached
        formats.get_format(name, settings.LANGUAGE_CODE)
    return settings.LANGUAGE_CODE


def regular_expressions() -> str:
    """Fill re's cache with what reverse() and the template filters compile, last: nothing evicts it."""
    from django.utils import translation

    with translation.override(settings.LANGUAGE_CODE):
        return warm_regexes(reverse_resolvers())


STEPS: tuple[tuple[str, Callable[[], str]], ...] = (
    ("URL resolver", url_resolver),
    ("template engines", template_engines),
    ("templates", compiled_templates),
    ("translation catalogue", translation_catalogue),
    ("built-in template filters", render_sample),
    ("regular expressions", regular_expressions),
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
