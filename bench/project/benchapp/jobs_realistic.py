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
