"""What the prober may be pointed at: one plain http(s) URL, checked before anything runs."""

from __future__ import annotations

from urllib.parse import urlsplit

from ecmptui.errors import EcmpError
from ecmptui.family import url_family

MAX_URL = 2048


def check_url(url: str) -> str:
    """`url` if it is a well-formed http(s) URL with a host, else one clear EcmpError."""
    shown = url if len(url) <= 60 else url[:57] + "..."
    if len(url) > MAX_URL:
        raise EcmpError(f"URL too long ({len(url)} characters, at most {MAX_URL})")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise EcmpError(f"URL {shown!r} contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number or out of range
    except ValueError as exc:
        raise EcmpError(f"not a valid URL: {shown!r} ({exc})") from exc
    if parts.scheme not in ("http", "https"):
        raise EcmpError(f"not an http(s) URL: {shown!r}")
    host = parts.hostname or ""
    if not host:
        raise EcmpError(f"URL {shown!r} has no host")
    if len(host) > 253 or any(len(label) > 63 for label in host.split(".")):
        raise EcmpError(f"URL {shown!r}: host name too long")
    if port == 0:
        raise EcmpError(f"URL {shown!r}: port 0")
    url_family(url)  # an IPv6 address in brackets, an IPv4 one not
    return url
