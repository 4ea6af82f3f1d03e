"""What the master calls so that CPython specializes Django's per-job code before forking."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.urls import get_resolver, reverse

from django_rq_pool.master import hot_paths
from ..harness import MANAGE

# In a fresh manage.py process: which of Django's per-job functions are specialized, before and after warming.
PROBE = """
import dis
from django.template import loader
from django.template.backends.django import Template
from django.urls import base, resolvers
from django.utils.translation import trans_real
from django_rq_pool.master.warm import warm_django

FUNCTIONS = (resolvers.URLResolver._reverse_with_prefix, base.reverse, loader.get_template,
             Template.render, trans_real.gettext)

def specialized():
    return [[i.opname for i in dis.get_instructions(f, adaptive=True)] != [i.opname for i in dis.get_instructions(f)]
            for f in FUNCTIONS]

before = specialized()
warm_django()
print(before, specialized())
"""


@pytest.mark.skipif(sys.version_info < (3, 11), reason="CPython specializes bytecode from 3.11 on")
def test_warming_specializes_djangos_per_job_functions_before_any_fork():
    out = subprocess.run(
        [sys.executable, str(MANAGE), "shell", "-c", PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    before, after = out.stdout.strip().splitlines()[-1].split("] [")
    assert "True" not in before, out.stdout  # nothing had called them yet
    assert "False" not in after, out.stdout + out.stderr


def test_reversible_names_reverse_the_root_and_each_namespace_with_builtin_converters_only():
    names = hot_paths.reversible_names(hot_paths.namespaced_resolvers(get_resolver()))
    namespaces = {name.rpartition(":")[0] for name, _ in names}
    assert {"", "admin"} <= namespaces  # the web site's settings: the test URLconf and the admin
    for name, args in names:
        reverse(name, args=args)  # raises NoReverseMatch if a sample argument did not fit


def test_cached_template_names_are_the_compiled_ones():
    from django.template.loader import get_template

    get_template("admin/base.html")
    assert "admin/base.html" in hot_paths.cached_template_names()
