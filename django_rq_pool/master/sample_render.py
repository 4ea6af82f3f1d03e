"""Render, in the master, a sample of Django's built-in template tags and filters over sample values.

The first render in a process does work that later renders do not: CPython 3.11+ specializes each
function's bytecode after its first calls (writing into the code object), ``decimal`` creates the
thread's context, the time zone is looked up, each filter's first call sets up what it caches.
In a job child each of those writes un-shares a page and is done again for every job. Done once
in the master, every job child inherits it. Only Django's own tags and filters run here, on
values built here: no project code, no database, no URL lookups.
"""

from __future__ import annotations

import datetime
import decimal
from typing import Any

from django.utils import timezone

SAMPLE = """{% load i18n l10n %}{% for row in rows %}<li class="{% cycle "odd" "even" %}">
{% if row.amount %}{{ row.name|title }} {{ row.name|upper|truncatechars:8 }} {{ row.name|capfirst }}
{{ row.amount|floatformat:2 }} {{ row.ratio|floatformat }} {{ row.amount|localize }} {{ row.count|add:1 }}
{{ row.day|date }} {{ row.day|date:"SHORT_DATE_FORMAT" }} {{ row.at|date:"DATETIME_FORMAT" }}
{{ row.at|date:"SHORT_DATETIME_FORMAT" }} {{ row.at|time }} {{ row.at|time:"TIME_FORMAT" }} {{ row.at|timesince:now }}
{% endif %}{{ row.tags|join:", " }} {{ row.tags|length }} item{{ row.tags|length|pluralize }}
{{ row.note|default:"-"|linebreaksbr }} {{ row.note|striptags|wordcount }} {{ row.flag|yesno }}
{{ row.name|urlencode }} {{ row.name|slugify }} {{ row.url|urlize }}</li>
{% empty %}{% translate "None" %}{% endfor %}{% with total=rows|length %}
{% blocktranslate count counter=total %}{{ counter }} item{% plural %}{{ counter }} items{% endblocktranslate %}
{% endwith %}"""
ROWS = 10


def sample_context() -> dict[str, Any]:
    now = timezone.now()
    rows = [
        {
            "name": f"sample item {n}",
            "amount": decimal.Decimal(1234) + decimal.Decimal(n) / 7,
            "ratio": n / 7,
            "count": n,
            "day": now.date() - datetime.timedelta(days=n),
            "at": now - datetime.timedelta(hours=n),
            "tags": ["a", "b"][: n % 3],
            "note": f"line {n}\n<b>line</b>",
            "flag": n % 2 == 0,
            "url": f"https://example.com/{n}",
        }
        for n in range(ROWS)
    ]
    return {"rows": rows, "now": now}


def render_sample() -> str:
    """Render the sample once with every Django template engine, as a job would: no language activated."""
    from django.template import engines

    rendered = []
    for engine in engines.all():
        if getattr(engine, "engine", None) is None:
            continue  # not a DjangoTemplates engine
        engine.from_string(SAMPLE).render(sample_context())
        rendered.append(engine.name)
    return f"{len(SAMPLE.split('|')) - 1} filters with {', '.join(rendered)}" if rendered else "no Django engine"
