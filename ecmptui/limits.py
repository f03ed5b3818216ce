"""Names and limits every layer agrees on (no I/O): lab instance names, the node count."""

from __future__ import annotations

import re

from ecmptui.errors import EcmpError

DEFAULT_LAB = "ecmp"
LAB_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,5}$")
MAX_NODES = 16
MIN_RATE, MAX_RATE = 1.0, 1000.0  # the dashboard's prober, requests per second


def validate_rate(rate: float, flag: str = "--rate") -> float:
    """A dashboard probe rate, or an EcmpError naming the flag."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise EcmpError(
            f"{flag} {rate:g}: the dashboard probes at {MIN_RATE:g} to {MAX_RATE:g} requests/s"
        )
    return rate


def validate_lab_name(name: str) -> str:
    """Return `name` if it is a valid lab instance name, else raise EcmpError."""
    if not LAB_NAME_RE.fullmatch(name or ""):
        raise EcmpError(
            f"invalid lab name {name!r}: use 1-6 lowercase letters or digits, starting "
            "with a letter"
        )
    return name
