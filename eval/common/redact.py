"""Secrets never reach a file or the console: API keys, `Authorization` headers and credentials in URLs are
replaced by `***` in whatever is written or printed (a server's error body may echo the request's headers)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
_BEARER = re.compile(r"(?i)\b(bearer|token|api[-_]?key)(\s*[:=]?\s*)([A-Za-z0-9._~+/=-]{6,})")
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")
_KEY_SHAPES = re.compile(r"\b(sk-[A-Za-z0-9_-]{8,}|hf_[A-Za-z0-9]{8,})")


def url(value: str | None) -> str | None:
    """The URL without `user:password@` (the rest is kept: it says which server was asked)."""
    if not value:
        return value
    parts = urlsplit(value)
    if "@" not in parts.netloc:
        return value
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"{MASK}@{host}", parts.path, parts.query, parts.fragment))


def text(value: str, secrets: Iterable[str | None] = ()) -> str:
    """`value` with every given secret, bearer token, key-shaped string and URL credential masked."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            value = value.replace(secret, MASK)
    value = _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{MASK}@", value)
    value = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", value)
    return _KEY_SHAPES.sub(MASK, value)


def is_loopback(value: str) -> bool:
    host = (urlsplit(value).hostname or "").strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def key_may_go_to(value: str) -> bool:
    """A key is sent over https, or to this machine (loopback) — never in clear text across a network."""
    return urlsplit(value).scheme == "https" or is_loopback(value)
