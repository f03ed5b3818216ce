"""Every action an operator can take on one node, in one table (no I/O).

The CLI's `node` subcommands, the dashboard's buttons and command palette, and the drills
all read this table; `deployment.operate.perform` is the one place that runs an action.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Kind(enum.Enum):
    NODE = "node"  # over SSH to the node: works on every target
    FAULT = "fault"  # lab only: break the node
    RESTORE = "restore"  # lab only: undo every fault
    DEVICE = "device"  # through the provider's API (lab and Metal; not static)


@dataclass(frozen=True)
class Action:
    """One node action. `out_of_service`: it takes the node out of the traffic (the dashboard
    measures how long the others took to carry it alone)."""

    name: str
    title: str  # "Kill BIRD on" + node name, in the palette and the timeline
    button: str | None  # the Traffic screen's button label (None: no button)
    kind: Kind
    help: str
    undo: str | None = None  # the action that puts the node back (drills run it)
    out_of_service: bool = True
    operator_only: bool = True  # every action changes something: never for viewers
    key: str | None = None  # the Traffic screen's key for the selected node

    @property
    def confirm(self) -> bool:
        """Whether the dashboard asks first (it takes the node out, or reboots it)."""
        return self.out_of_service or self.kind is Kind.DEVICE

    @property
    def lab_only(self) -> bool:
        return self.kind in (Kind.FAULT, Kind.RESTORE)


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in [
        Action(
            "withdraw",
            "Withdraw",
            "Withdraw",
            Kind.NODE,
            "stop announcing the EIP; the BGP session stays up",
            undo="announce",
            key="w",
        ),
        Action(
            "announce",
            "Announce",
            "Announce",
            Kind.NODE,
            "announce the EIP again",
            out_of_service=False,
            key="a",
        ),
        Action(
            "shutdown",
            "Shut down BGP on",
            None,
            Kind.NODE,
            "take the node's BGP session(s) down",
            undo="start",
            key="s",
        ),
        Action(
            "start",
            "Start BGP on",
            None,
            Kind.NODE,
            "bring the node's BGP session(s) up",
            out_of_service=False,
            key="S",
        ),
        Action(
            "kill-bird",
            "Kill BIRD on",
            "Kill",
            Kind.FAULT,
            "BIRD killed with SIGKILL (systemd does not restart it until restore)",
            undo="restore",
            key="k",
        ),
        Action(
            "freeze-bird",
            "Freeze BIRD on",
            "Freeze",
            Kind.FAULT,
            "BIRD stopped with SIGSTOP: its sessions stall silently",
            undo="restore",
            key="f",
        ),
        Action(
            "isolate",
            "Isolate",
            "Isolate",
            Kind.FAULT,
            "the node drops everything on its uplink (nftables), mgmt stays reachable",
            undo="restore",
            key="i",
        ),
        Action(
            "stop-nginx",
            "Stop nginx on",
            "Stop web",
            Kind.FAULT,
            "nginx stopped while BIRD keeps announcing",
            undo="restore",
            key="n",
        ),
        Action(
            "restore",
            "Restore",
            "Restore",
            Kind.RESTORE,
            "undo every fault on the node",
            out_of_service=False,
            key="r",
        ),
        Action(
            "reboot",
            "Reboot",
            "Reboot",
            Kind.DEVICE,
            "reboot the server through the API and wait until it announces again by itself",
            key="R",
        ),
    ]
}

FAULTS = tuple(a.name for a in ACTIONS.values() if a.kind is Kind.FAULT)
NODE_ACTIONS = tuple(a.name for a in ACTIONS.values() if a.kind is Kind.NODE)
DEVICE_ACTIONS = tuple(a.name for a in ACTIONS.values() if a.kind is Kind.DEVICE)


def available(faults: bool, api: bool) -> list[Action]:
    """The actions a target offers: faults and restore only where it owns the machines,
    device actions only where there is an API."""
    out = []
    for a in ACTIONS.values():
        if a.lab_only and not faults:
            continue
        if a.kind is Kind.DEVICE and not api:
            continue
        out.append(a)
    return out


@dataclass(frozen=True)
class RouterAction:
    """A lab-only action on one of the two core routers."""

    name: str
    title: str  # "Kill BIRD on" + router name
    button: str
    help: str
    fault: bool = True  # it breaks the router (the dashboard asks first); else: restore


ROUTER_ACTIONS: dict[str, RouterAction] = {
    a.name: a
    for a in [
        RouterAction(
            "kill-bird",
            "Kill BIRD on",
            "Kill",
            "the router's BIRD killed (and kept down until restore)",
        ),
        RouterAction(
            "freeze-bird",
            "Freeze BIRD on",
            "Freeze",
            "the router's BIRD stopped with SIGSTOP: its sessions stall silently",
        ),
        RouterAction(
            "isolate", "Isolate", "Isolate", "the router drops everything on its fabric link"
        ),
        RouterAction(
            "restore", "Restore", "Restore", "undo every fault on the router", fault=False
        ),
    ]
}
ROUTER_FAULTS = tuple(a.name for a in ROUTER_ACTIONS.values() if a.fault)
