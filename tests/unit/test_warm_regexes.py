"""What the master compiles into re's cache before forking, and what it must never touch."""

from __future__ import annotations

import re
import sys
import types

import pytest
from django.urls import reverse
from django.utils.functional import SimpleLazyObject, empty
from django.utils.regex_helper import _lazy_re_compile

from django_rq_pool.master import regexes
from django_rq_pool.master.warm import reverse_resolvers

SOURCE = """
import re
import re as regex

WORDS = re.compile(r"\\w+")
def f(s):
    re.sub("[-\\\\s]+", "-", s)
    regex.search("a.b", s, re.I | re.M)
    re.split(r"\\s", s, 0, re.S)
    re.findall(b"x+", s, flags=re.A)
    re.match(s, s)
    re.sub("x", "y", s, flags=FLAGS)
    other.sub("not re", s)
"""


@pytest.fixture
def module_with_literals(tmp_path, monkeypatch):
    (tmp_path / "literal_regex_module.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import literal_regex_module

    yield literal_regex_module
    sys.modules.pop("literal_regex_module", None)


def test_literal_patterns_with_their_flags_as_re_would_key_them(module_with_literals):
    found = regexes.literal_patterns([module_with_literals])
    assert found == {
        (r"\w+", 0),
        ("[-\\s]+", 0),
        ("a.b", int(re.I | re.M)),
        (r"\s", int(re.S)),
        (b"x+", int(re.A)),
    }


def test_a_module_without_source_or_without_re_is_skipped():
    assert regexes.literal_patterns([types.ModuleType("no_source"), sys]) == set()


def test_fill_cache_enlarges_the_cache_to_keep_every_pattern(monkeypatch):
    monkeypatch.setattr(re, "_MAXCACHE", 8)
    monkeypatch.setattr(regexes, "DEFAULT_CACHE_SIZE", 8)
    patterns = {(f"warm-{n}-[a-z]+", 0) for n in range(20)} | {("(unbalanced", 0)}
    compiled, size = regexes.fill_cache(patterns)
    assert (compiled, size) == (20, 29)
    assert all((str, pattern, 0) in re._cache for pattern, _ in patterns if pattern != "(unbalanced")
    re.purge()


def test_only_djangos_lazy_regexes_are_evaluated(monkeypatch):
    calls = []
    other = SimpleLazyObject(lambda: calls.append("evaluated") or "x")
    lazy = _lazy_re_compile(r"lazy-\d+-probe")
    module = types.ModuleType("lazy_probe_module")

    class Holder:
        pattern = _lazy_re_compile(r"class-\d+-probe")

    Holder.__module__ = module.__name__
    module.__dict__.update(other=other, lazy=lazy, Holder=Holder, _lazy_re_compile=_lazy_re_compile)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    assert regexes.evaluate_lazy_patterns() >= 2
    assert lazy.__dict__["_wrapped"] is not empty and Holder.__dict__["pattern"].__dict__["_wrapped"] is not empty
    assert calls == [] and other.__dict__["_wrapped"] is empty


def test_reverse_patterns_are_what_reverse_searches_with():
    expected = regexes.reverse_patterns(reverse_resolvers())  # the admin's, under a namespace
    re.purge()
    reverse("admin:auth_user_change", args=[3])
    searched = {(pattern, flags) for (_, pattern, flags) in re._cache}
    assert searched and searched <= expected


def test_template_library_modules_include_the_filters_and_what_they_import():
    names = {module.__name__ for module in regexes.template_library_modules()}
    assert {"django.template.defaultfilters", "django.utils.text", "django.utils.html"} <= names
