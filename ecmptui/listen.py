"""HOST:PORT for a server's listening socket (`serve --listen`, `--metrics-listen`)."""

from __future__ import annotations

import ipaddress
import re

from ecmptui.errors import EcmpError


def parse_listen(text: str, flag: str = "--listen", any_port: bool = False) -> tuple[str, int]:
    """(host, port) from HOST:PORT or [IPv6]:PORT; an empty host is 127.0.0.1. Port 0 (the
    kernel picks one, said at start) only with `any_port`."""
    host, sep, port = text.rpartition(":")
    least = 0 if any_port else 1
    if not sep or not port.isdigit() or not least <= int(port) < 65536:
        raise EcmpError(f"{flag} {text!r}: expected HOST:PORT")
    if host.startswith("[") or host.endswith("]") or ":" in host:  # IPv6: [ADDR]:PORT
        inner = host[1:-1] if host.startswith("[") and host.endswith("]") else None
        try:
            ipaddress.IPv6Address(inner or "")
        except ValueError:
            raise EcmpError(f"{flag} {text!r}: expected HOST:PORT or [IPv6]:PORT") from None
        return inner or "", int(port)
    if host and not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})", host):
        raise EcmpError(f"{flag} {text!r}: {host!r} is not a host name or address")
    return host or "127.0.0.1", int(port)
