"""Compile in the master the regular expressions every job child would otherwise compile again.

Python's ``re`` module keeps a per-process cache of compiled patterns, which a forked child
inherits: what the master compiled before forking, no job child compiles again. Without this a
job child compiles, on first use, one pattern per ``reverse()`` candidate (Django searches the
URL with ``re.search("^" + prefix + pattern, ...)``), the patterns Django compiles lazily
(``_lazy_re_compile``: date formats, validators, template parsing) and those its template
filters pass to ``re`` as literals (``title``, ``slugify``, ...): a few milliseconds per job.

``re`` keeps 512 patterns by default and evicts the oldest when full, so the master raises that
limit to hold the patterns compiled here plus the default room for what jobs compile themselves.
"""

from __future__ import annotations

import ast
import re
import sys
import types
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from django.conf import settings

# re's functions that take a pattern first, and the position of their ``flags`` argument.
FLAGS_POSITION = {"compile": 1, "search": 2, "match": 2, "fullmatch": 2, "findall": 2, "finditer": 2, "split": 3}
FLAGS_POSITION.update(sub=4, subn=4)
DEFAULT_CACHE_SIZE = getattr(re, "_MAXCACHE", 512)

Pattern = tuple[Any, int]  # (str or bytes, flags): the key re caches a compiled pattern under


def reverse_patterns(resolvers: Iterable[Any]) -> set[Pattern]:
    """What ``reverse()`` searches with for every name of these resolvers, under the script prefix."""
    from django.urls import get_script_prefix

    prefix = re.escape(get_script_prefix())
    found: set[Pattern] = set()
    for resolver in resolvers:
        table = resolver.reverse_dict
        for key in table:
            found.update((f"^{prefix}{pattern}", 0) for _, pattern, _, _ in table.getlist(key))
    return found


def evaluate_lazy_patterns() -> int:
    """Compile every pattern Django's ``_lazy_re_compile`` left for its first use; returns how many.

    Looked for in the globals and class attributes of every loaded module. Only objects of exactly
    that kind are evaluated: any other lazy object may have side effects, and even ``isinstance``
    would evaluate it.
    """
    from django.utils.functional import SimpleLazyObject, empty
    from django.utils.regex_helper import _lazy_re_compile

    evaluated = 0
    for module in list(sys.modules.values()):
        if type(module) is not types.ModuleType:  # a lazy module loads itself on any access
            continue
        if vars(module).get("_lazy_re_compile") is not _lazy_re_compile:
            continue  # a module that never imported it holds none of its own
        for value in _globals_and_class_attributes(module):
            if type(value) is SimpleLazyObject and _is_lazy_regex(value) and value.__dict__["_wrapped"] is empty:
                value._setup()
                evaluated += 1
    return evaluated


def _globals_and_class_attributes(module: types.ModuleType) -> Iterator[Any]:
    for value in list(vars(module).values()):
        yield value
        if issubclass(type(value), type) and value.__module__ == module.__name__:
            yield from list(vars(value).values())


def _is_lazy_regex(lazy: Any) -> bool:
    setup = lazy.__dict__.get("_setupfunc")
    return (
        getattr(setup, "__module__", None) == "django.utils.regex_helper"
        and getattr(setup, "__qualname__", "") == "_lazy_re_compile.<locals>._compile"
    )


def template_library_modules() -> list[types.ModuleType]:
    """The modules defining the Django engines' filters and tags, and the modules they import from (but the stdlib)."""
    from django.template import engines

    names: dict[str, None] = {}
    for engine in engines.all():
        inner = getattr(engine, "engine", None)
        if inner is None:
            continue
        for library in [*inner.template_builtins, *inner.template_libraries.values()]:
            for function in [*library.filters.values(), *library.tags.values()]:
                names.setdefault(getattr(function, "__module__", None) or "", None)
    modules = _loaded(names)
    imported: dict[str, None] = {}
    for module in modules:
        for value in list(vars(module).values()):
            kind = type(value)
            if kind is types.ModuleType:
                imported.setdefault(value.__name__, None)
            elif kind is types.FunctionType or issubclass(kind, type):
                imported.setdefault(value.__module__, None)
    return modules + _loaded(name for name in imported if name not in names and not _is_stdlib(name))


def _is_stdlib(name: str) -> bool:
    """The standard library's modules compile their patterns at import, not per call: not worth parsing."""
    return name.partition(".")[0] in getattr(sys, "stdlib_module_names", ())


def _loaded(names: Iterable[str]) -> list[types.ModuleType]:
    """The plain modules of these names that are loaded (a lazy module would load itself)."""
    return [sys.modules[name] for name in names if type(sys.modules.get(name)) is types.ModuleType]


def literal_patterns(modules: Iterable[types.ModuleType]) -> set[Pattern]:
    """Patterns these modules' source passes to ``re`` as literals (``re.sub("[-\\s]+", ...)``)."""
    found: set[Pattern] = set()
    for module in modules:
        aliases = {name for name, value in vars(module).items() if value is re}
        source = _source(module) if aliases else None
        if source is None:
            continue
        for node in ast.walk(source):
            pattern = _literal_call(node, aliases)
            if pattern is not None:
                found.add(pattern)
    return found


def _source(module: types.ModuleType) -> ast.Module | None:
    """The module's parsed source, read from its file (not through linecache, which would keep it)."""
    path = getattr(module, "__file__", None)
    if not isinstance(path, str) or not path.endswith(".py"):
        return None
    try:
        return ast.parse(Path(path).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return None


def _literal_call(node: ast.AST, aliases: set[str]) -> Pattern | None:
    """``(pattern, flags)`` of a call ``re.<function>("literal", ...)``; None for any other node."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return None
    function, owner = node.func.attr, node.func.value
    if function not in FLAGS_POSITION or not (isinstance(owner, ast.Name) and owner.id in aliases):
        return None
    if not node.args or not isinstance(node.args[0], ast.Constant) or not isinstance(node.args[0].value, (str, bytes)):
        return None
    position = FLAGS_POSITION[function]
    given = [kw.value for kw in node.keywords if kw.arg == "flags"] + node.args[position : position + 1]
    flags = _flags(given[0], aliases) if given else 0
    return None if flags is None else (node.args[0].value, flags)


def _flags(node: ast.AST, aliases: set[str]) -> int | None:
    """The value of ``re.I``, ``re.I | re.M``, an int literal; None for what only running the code knows."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
        flag = getattr(re, node.attr, None)
        return int(flag) if isinstance(flag, re.RegexFlag) else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, right = _flags(node.left, aliases), _flags(node.right, aliases)
        return None if left is None or right is None else left | right
    return None


def fill_cache(patterns: set[Pattern]) -> tuple[int, int]:
    """Compile the patterns into re's cache, made large enough to keep them; returns (compiled, cache size)."""
    size = getattr(re, "_MAXCACHE", None)
    if isinstance(size, int) and size < len(patterns) + DEFAULT_CACHE_SIZE:
        size = re._MAXCACHE = len(patterns) + DEFAULT_CACHE_SIZE  # type: ignore[attr-defined]
    compiled = 0
    for pattern, flags in sorted(patterns, key=repr):
        try:
            re.compile(pattern, flags)
        except (re.error, TypeError, ValueError, OverflowError, RecursionError):
            continue  # a pattern that never compiles costs the job nothing to keep
        compiled += 1
    return compiled, size or 0


def warm_regexes(resolvers: Iterable[Any]) -> str:
    """Run the three sources in order; the cached patterns go last, so nothing evicts them."""
    lazy = evaluate_lazy_patterns()
    urls = reverse_patterns(resolvers) if getattr(settings, "ROOT_URLCONF", None) else set()
    literals = literal_patterns(template_library_modules())
    compiled, size = fill_cache(urls | literals)
    found = f"{len(urls)} URL patterns, {len(literals)} in template libraries, {lazy} lazy"
    return f"{found}; {compiled} cached (re's cache holds {size})"
