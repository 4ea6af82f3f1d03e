"""Hiding Redis secrets before anything is printed or logged.

One rule for every output (``--check``, configuration errors, log lines): a value under a
password-like key, at any depth of an ``RQ_QUEUES`` entry, becomes ``***``; so do the password
in a URL's user info and any password-like parameter of a URL's query string.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
_SECRET_KEY = re.compile(r"pass|pwd|secret|token|credential|api_?key|auth", re.IGNORECASE)
# In free text (a message that quotes a dict or a URL): a quoted password-like key and its quoted
# value; a URL's user info; a password-like query parameter.
_QUOTED_PAIR = re.compile(
    r"""(?P<key>(['"])[^'"]*(?:pass|pwd|secret|token|credential|api_?key|auth)[^'"]*\2\s*[:=]\s*)"""
    r"""(?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|b'(?:[^'\\]|\\.)*'|[^\s,}\])]+)""",
    re.IGNORECASE,
)
_USERINFO = re.compile(r"(?P<head>\b[a-z][a-z0-9+.\-]*://[^\s:/@'\"]*:)[^\s@/'\"]*(?=@)", re.IGNORECASE)
_KEYWORD = re.compile(r"(?P<head>\b\w*(?:password|passwd|pwd|secret|token)\w*=)[^\s,&'\")\]}]+", re.IGNORECASE)
_QUERY_PARAM = re.compile(
    r"(?P<head>[?&][^=&\s'\"]*(?:pass|pwd|secret|token|credential|api_?key|auth)[^=&\s'\"]*=)[^&\s'\"#]*",
    re.IGNORECASE,
)


_MASKED_HEAD = rf"\g<head>{MASK}"


def is_secret_key(key: object) -> bool:
    return isinstance(key, str) and bool(_SECRET_KEY.search(key))


def redact_url(url: str) -> str:
    """The URL with its user info password and password-like query parameters masked, the rest verbatim."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return redact_text(url)
    end = next((i for i, char in enumerate(rest) if char in "/?#"), len(rest))
    netloc, tail = rest[:end], rest[end:]
    if "@" in netloc:
        credentials, _, host = netloc.rpartition("@")
        user, has_password, _ = credentials.partition(":")
        if has_password:  # redis://user@host names a user only (redis-py reads no password there)
            netloc = f"{user}:{MASK}@{host}"
    return f"{scheme}://{netloc}" + _QUERY_PARAM.sub(_MASKED_HEAD, tail)


def redact(value: Any) -> Any:
    """A copy of ``value`` (mappings, sequences, URLs, nested) with every secret masked."""
    if isinstance(value, dict):
        return {k: (MASK if is_secret_key(k) and v not in (None, "") else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(item) for item in value)
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return value


def redact_text(text: str) -> str:
    """Mask secrets quoted in free text (a log line or an error that shows a dict or a URL)."""
    if "://" in text:
        text = _USERINFO.sub(_MASKED_HEAD, text)
    text = _QUERY_PARAM.sub(_MASKED_HEAD, text)
    text = _KEYWORD.sub(_MASKED_HEAD, text)
    return _QUOTED_PAIR.sub(rf"\g<key>'{MASK}'", text)


def describe_connection(params: dict[str, Any]) -> str:
    """A readable, redacted connection description: ``KEY=value, ...`` sorted by key."""
    return ", ".join(f"{key}={value}" for key, value in sorted(redact(params).items()))
