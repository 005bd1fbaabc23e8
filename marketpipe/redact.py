"""Masking of secrets in URLs and in text that may quote one (the only place that knows how).

`mask_url(url)` shows a URL with its password and every secret-named query parameter
(`password`, `passwd`, `pwd`, `secret`, `token`, `…key`, `sslpassword`, …) replaced by `***`, using
SQLAlchemy's URL parser. `redact(text)` applies it to every `scheme://…` inside free text and masks
`password=…`-style pairs (libpq connection strings, driver messages).

A password holding an unencoded `@` (`user:pa@ss@host/db`) is taken to end at the last `@` before
the path, as a human reads it; `encode_userinfo(url)` percent-encodes such a password so that
SQLAlchemy and libpq see the host the user meant.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

import sqlalchemy as sa

MASK = "***"
# query parameter / key=value names that hold secrets (matched case-insensitively, anywhere)
SECRET_NAME = re.compile(r"pass|pwd|secret|token|key|credential|signature|auth", re.I)
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")
_PAIR_IN_TEXT = re.compile(
    r"(?i)\b([A-Za-z0-9_.\-]*(?:pass|pwd|secret|token|key|credential|auth)[A-Za-z0-9_]*)"
    r"(\s*=\s*)('[^']*'|\"[^\"]*\"|[^\s&;,'\"]+)"
)


def _split_userinfo(url: str) -> tuple[str, str | None, str | None, str]:
    """(scheme://, username, password, rest-after-@) with the password ending at the last `@`
    before the path; (prefix, None, None, rest) when the URL has no user part."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url, None, None, ""
    at = rest.find("@")
    if at < 0:
        return scheme + sep, None, None, rest
    slash, qmark = rest.find("/"), rest.find("?")
    if -1 < slash < qmark < at:  # the `@` sits in the query string (`…/db?x=a@b`)
        return scheme + sep, None, None, rest
    after = rest.find("/", at)
    head = rest if after < 0 else rest[:after]
    end = head.rfind("@")
    userinfo, tail = rest[:end], rest[end + 1 :]
    user, colon, password = userinfo.partition(":")
    return scheme + sep, user, (password if colon else None), tail


def encode_userinfo(url: str) -> str:
    """`url` with its username and password percent-encoded (already-encoded text is kept)."""
    prefix, user, password, tail = _split_userinfo(url)
    if user is None:
        return url
    enc = quote(unquote(user), safe="")
    if password is not None:
        enc += ":" + quote(unquote(password), safe="")
    return f"{prefix}{enc}@{tail}"


def mask_url(url: str) -> str:
    """The URL with its password and secret-named query values replaced by `***`."""
    if "://" not in url:
        return url
    prefix, user, password, tail = _split_userinfo(url)
    if user is not None:
        user_part = quote(unquote(user), safe="") + (":" + MASK if password is not None else "")
        url = f"{prefix}{user_part}@{tail}"
    try:
        parsed = sa.make_url(url)
    except Exception:  # not shaped like a URL SQLAlchemy knows: mask by hand
        return _mask_query_text(url)
    if parsed.query:
        masked = {k: (MASK if SECRET_NAME.search(k) else v) for k, v in parsed.query.items()}
        parsed = parsed.set(query=masked)
    text = parsed.render_as_string(hide_password=True)
    # SQLAlchemy percent-encodes the placeholder it did not write itself
    return text.replace(quote(MASK, safe=""), MASK)


def _mask_query_text(url: str) -> str:
    base, q, query = url.partition("?")
    if not q:
        return url
    parts = []
    for item in query.split("&"):
        name, eq, _ = item.partition("=")
        parts.append(f"{name}={MASK}" if eq and SECRET_NAME.search(name) else item)
    return base + "?" + "&".join(parts)


def redact(text: str) -> str:
    """Free text with every URL masked (`mask_url`) and `password=…`-style values replaced."""
    if not text:
        return text
    text = _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), text)
    return _PAIR_IN_TEXT.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)


def redact_mapping(values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `values` (e.g. settings overrides about to become Prefect flow-run parameters or
    an artifact) with secret-named keys' values as `***` and URLs / text masked, recursively."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if SECRET_NAME.search(str(key)) and value is not None:
            out[key] = MASK
        elif isinstance(value, Mapping):
            out[key] = redact_mapping(value)
        elif isinstance(value, str):
            out[key] = redact(value)
        elif isinstance(value, list | tuple):
            out[key] = type(value)(redact(v) if isinstance(v, str) else v for v in value)
        else:
            out[key] = value
    return out
