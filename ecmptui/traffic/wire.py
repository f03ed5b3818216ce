"""What the prober and the flows read off the wire, without an HTTP client: the backend's
header and page, and what a failed socket means (so the dashboard can load them cheaply)."""

from __future__ import annotations

import errno
import re

SERVED_BY = re.compile(rb"\r\nx-served-by:[ \t]*([^\r\n]*)", re.IGNORECASE)
PAGE_RE_B = re.compile(rb"Welcome to nginx (\d+)")


def raw_classify(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
        return "reset"
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable"
    return "other"
