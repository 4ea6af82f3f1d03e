"""Run, in the master, Django's per-job entry points often enough for CPython to specialize them.

CPython 3.11+ rewrites a function's bytecode in place after its first few calls (quickening, then
specializing each instruction for the types it meets), writing into the code object. A job child
that is the first to call ``reverse()``, ``get_template()``, a template render or ``gettext()``
more than a few times does that work itself and un-shares the pages of every code object on the
way, in every job. Called here a few dozen times before forking, they are specialized once and
inherited. Only Django's own code runs: ``reverse()`` on URL names whose arguments all use
Django's built-in path converters (a project's converter is never called), ``get_template()``
without rendering, ``gettext()`` of the catalogue's own messages; no database.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.urls import converters

from django_rq_pool.master.sample_render import render_sample

CALLS = 32  # comfortably past 3.11's warm-up (8 calls) and the first specialization of each instruction
SAMPLE_URL_VALUES: dict[type, Any] = {
    converters.IntConverter: 1,
    converters.StringConverter: "a",
    converters.SlugConverter: "a",
    converters.PathConverter: "a",
    converters.UUIDConverter: uuid.UUID(int=0),
}


def reversible_names(resolvers: list[Any]) -> list[tuple[str, list[Any]]]:
    """One URL name per resolver (root first, then ``ns:...`` paths) with sample arguments, in order.

    A name qualifies when each of its parameters has a built-in converter, so reversing it calls
    only Django's code; names whose first pattern takes no parameters do too.
    """
    found = []
    for path, resolver in resolvers:
        for key, entries in resolver.reverse_dict.lists():
            if not isinstance(key, str):
                continue  # views are keys too
            possibilities, _pattern, _defaults, used = entries[0]
            params = possibilities[0][1]
            if all(type(used.get(param)) in SAMPLE_URL_VALUES for param in params):
                name = f"{path}:{key}" if path else key
                found.append((name, [SAMPLE_URL_VALUES[type(used[param])] for param in params]))
                break
    return found


def namespaced_resolvers(root: Any) -> list[tuple[str, Any]]:
    """The root and each namespaced resolver, with the ``a:b`` path that reaches it, depth first."""
    found = [("", root)]
    for path, resolver in found:
        for namespace, (_extra, sub) in resolver.namespace_dict.items():
            found.append((f"{path}:{namespace}" if path else namespace, sub))
    return found


def reverse_calls(root: Any) -> str:
    """Reverse a sample name of each resolver, with positional and keyword arguments, CALLS times."""
    from django.urls import NoReverseMatch, reverse

    names = reversible_names(namespaced_resolvers(root))
    for _ in range(CALLS):
        for name, args in names:
            try:
                reverse(name, args=args)
                reverse(name, kwargs=dict(zip(_params(root, name), args, strict=False)) or None)
            except NoReverseMatch:
                continue
    return f"{len(names)} URL names"


def _params(root: Any, name: str) -> list[str]:
    """The parameter names of ``name``'s first pattern (reverse()'s keyword arguments)."""
    resolver = root
    *namespaces, view = name.split(":")
    for namespace in namespaces:
        resolver = resolver.namespace_dict[namespace][1]
    return list(resolver.reverse_dict.getlist(view)[0][0][0][1])


def cached_template_names() -> list[str]:
    """The names the Django engines' cached loaders hold a compiled template for."""
    from django.template import engines
    from django.template.loaders.cached import Loader as CachedLoader

    names = []
    for engine in engines.all():
        for loader in getattr(getattr(engine, "engine", None), "template_loaders", ()):
            if isinstance(loader, CachedLoader):
                names += [key for key, found in loader.get_template_cache.items() if not isinstance(found, type)]
    return names


def template_lookups(names: list[str]) -> str:
    """Look the first compiled template up through ``django.template.loader``, as render_to_string does."""
    from django.template.loader import get_template

    for _ in range(CALLS if names else 0):
        get_template(names[0])
    return f"get_template({names[0]!r})" if names else "no template"


def catalogue_lookups() -> str:
    """gettext() with no language activated, as a job calls it: messages of the catalogue and one absent."""
    from django.conf import settings
    from django.utils import translation

    if not settings.USE_I18N:
        return "USE_I18N is off"
    catalogue = translation.trans_real.translation(settings.LANGUAGE_CODE)._catalog
    messages = [key for key in list(catalogue.keys())[:8] if isinstance(key, str) and key]
    for _ in range(CALLS):
        for message in [*messages, "rqpool: a message of no catalogue"]:
            translation.gettext(message)
    return f"{len(messages) + 1} messages"


def renders() -> str:
    """Render the sample as often: the render path above the nodes (make_context, Context) too."""
    for _ in range(CALLS // 4):  # each render calls the nodes' code once per row already
        render_sample()
    return f"{CALLS // 4} sample renders"
