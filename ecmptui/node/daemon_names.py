"""The routing daemons ecmptui drives, by name (no I/O: config and CLI parse with it)."""

from __future__ import annotations

from ecmptui.errors import EcmpError

DAEMON_NAMES = ("bird", "frr")
DEFAULT_DAEMON = "bird"
DAEMON_LABELS = {"bird": "BIRD", "frr": "FRR"}  # as people write them


def no_such_daemon(name: str) -> EcmpError:
    return EcmpError(f"unknown routing daemon {name!r} (one of {', '.join(DAEMON_NAMES)})")


def parse_daemons(text: str) -> tuple[str, ...]:
    """`bird`, `frr` or a comma list taken in turn (`bird,frr`: node 1 BIRD, node 2 FRR,
    node 3 BIRD, ...)."""
    names = tuple(w.strip().lower() for w in text.split(","))
    for n in names:
        if n not in DAEMON_NAMES:
            raise no_such_daemon(n)
    return names


def daemon_of_node(daemons: tuple[str, ...], index: int) -> str:
    """The daemon of node `index` (1-based) when `daemons` are taken in turn."""
    return daemons[(index - 1) % len(daemons)]
