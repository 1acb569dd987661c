"""Secrets never reach a file or the console: API keys, `Authorization` headers (bearer and basic), key-like
query parameters and credentials in URLs are replaced by `***` in whatever is written or printed (a server's
error body may echo the request's headers, and an exception may quote a token)."""

from __future__ import annotations

import base64
import ipaddress
import os
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

MASK = "***"
_SECRET_NAMES = r"api[-_]?key|apikey|key|token|access[-_]?token|auth|secret|password|passwd|sig|signature"
# an Authorization header's credentials, whatever the scheme's casing
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic)(\s+)([A-Za-z0-9._~+/=:-]{6,})")
# name = value, name: value, "name": "value" (JSON bodies), with the name a secret's
_NAMED = re.compile(rf"""(?i)(["']?\b(?:{_SECRET_NAMES})["']?\s*[:=]\s*["']?)([^\s"'&,;}}]{{6,}})""")
# ?key=…&access_token=… in any URL (the name may end a longer one: x_access_token)
_QUERY = re.compile(rf"(?i)([?&][\w.-]*(?:{_SECRET_NAMES})=)[^&\s\"'#]+")
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s?#]*@")  # up to the last @ before the path
_KEY_SHAPES = re.compile(r"\b(sk-[A-Za-z0-9_-]{8,}|hf_[A-Za-z0-9]{8,}|gh[pousr]_[A-Za-z0-9]{16,})")
_SECRET_ENV = re.compile(r"(?i)(KEY|TOKEN|SECRET|PASSWORD)")


def url(value: str | None) -> str | None:
    """The URL without `user:password@` and with secret-named query parameters masked (the rest says which
    server was asked)."""
    if not value:
        return value
    parts = urlsplit(value)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        secret = re.compile(rf"(?i)({_SECRET_NAMES})$")
        query = urlencode([(k, MASK if secret.search(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def url_secrets(value: str | None) -> list[str]:
    """What a URL's credentials become on the wire: the password, `user:password`, and its base64 (the Basic
    authorization header an HTTP client derives from them)."""
    if not value:
        return []
    parts = urlsplit(value)
    if "@" not in parts.netloc:
        return []
    userinfo = unquote(parts.netloc.rsplit("@", 1)[0])
    password = userinfo.split(":", 1)[1] if ":" in userinfo else ""
    encoded = base64.b64encode(userinfo.encode()).decode()
    return [s for s in (userinfo, password, encoded) if s]


def env_secrets() -> list[str]:
    """Values of this process's secret-named variables (OPENAI_API_KEY, HF_TOKEN, API_KEY, …)."""
    return [v for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v) >= 8]


def text(value: str, secrets: Iterable[str | None] = ()) -> str:
    """`value` with every given secret and every secret-shaped string masked."""
    for secret in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        value = value.replace(secret, MASK)
    value = _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{MASK}@", value)
    value = _QUERY.sub(lambda m: f"{m.group(1)}{MASK}", value)
    value = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", value)
    value = _NAMED.sub(lambda m: f"{m.group(1)}{MASK}", value)
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
