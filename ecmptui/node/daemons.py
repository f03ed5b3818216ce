"""Which routing daemon a node runs: the adapters by name, and detection over SSH."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from ecmptui.node.bird_daemon import BirdDaemon
from ecmptui.node.daemon_names import no_such_daemon
from ecmptui.node.frr_daemon import FrrDaemon
from ecmptui.node.routing import RoutingDaemon

if TYPE_CHECKING:
    from ecmptui.node.layout import Layout

ADAPTERS: dict[str, type[RoutingDaemon]] = {"bird": BirdDaemon, "frr": FrrDaemon}


def daemon_for(name: str, layout: Layout) -> RoutingDaemon:
    try:
        return ADAPTERS[name](layout)
    except KeyError:
        raise no_such_daemon(name) from None


def detect_script(layout: Layout) -> str:
    """A shell line that prints the node's daemon: the one provisioning recorded, else the
    one whose unit runs, else the one that has a BGP config, else BIRD."""
    q = shlex.quote
    return (
        f"d=$(cat {q(layout.daemon_file)} 2>/dev/null); "
        'case "$d" in bird|frr) echo "$d"; exit 0;; esac; '
        f"systemctl is-active --quiet {q(layout.frr_unit)} && {{ echo frr; exit 0; }}; "
        f"systemctl is-active --quiet {q(layout.bird_unit)} && {{ echo bird; exit 0; }}; "
        f"grep -qs '^router bgp' {q(layout.frr_conf)} && {{ echo frr; exit 0; }}; "
        "echo bird"
    )
