"""A job module importing what real job code imports: stdlib and third-party packages Django doesn't load."""

import csv
import decimal
import hashlib
import io
import json
import statistics
import tarfile  # noqa: F401  (imported, as real job modules import more than they use)
import xml.etree.ElementTree as ET
import zipfile  # noqa: F401
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import dateutil.parser
import dateutil.rrule
import dateutil.tz
import PIL.Image
import pygments
import pygments.formatters.html
import pygments.lexers.python

from .state import CATALOG


def report(day: str) -> str:
    """A small report: reads the shared state, parses a date, builds CSV/XML/mail/thumbnail, hashes it."""
    when = dateutil.parser.isoparse(day).replace(tzinfo=dateutil.tz.UTC)
    rows = [CATALOG[i] for i in range(0, min(len(CATALOG), 2000), 100)]
    out = io.StringIO()
    writer = csv.writer(out)
    for row in rows:
        writer.writerow([row["id"], row["name"], decimal.Decimal(row["dims"][2]).quantize(decimal.Decimal("0.01"))])
    tree = ET.Element("report", day=when.isoformat(), mean=str(statistics.fmean(r["id"] for r in rows) if rows else 0))
    mail = MIMEMultipart()
    mail.attach(MIMEText(out.getvalue()))
    image = PIL.Image.new("RGB", (16, 16))
    highlighted = pygments.highlight(
        "x = 1", pygments.lexers.python.PythonLexer(), pygments.formatters.html.HtmlFormatter()
    )
    return hashlib.sha256(
        json.dumps([ET.tostring(tree).decode(), mail.as_string()[:64], image.size, highlighted]).encode()
    ).hexdigest()


def django_heavy(pk: int) -> str:
    """What a job that builds a link, a page and a message does: reverse(), render_to_string(), gettext()."""
    import datetime

    from django.template.loader import render_to_string
    from django.urls import reverse
    from django.utils.translation import gettext

    rows = [
        {
            "url": reverse("item", args=[pk + n]),
            "name": CATALOG[n]["name"],
            "value": n / 7,
            "when": datetime.date(2026, 11, 1 + n % 28),
        }
        for n in range(10)
    ]
    link = reverse("s3:s3-42", kwargs={"pk": pk, "slug": "report"})
    title = gettext("This field is required.")
    html = render_to_string("benchapp/heavy.html", {"name": title, "rows": rows})
    return hashlib.sha256((link + html).encode()).hexdigest()
