"""Every action an operator can take on a node or a core router, in one table: what each
is, what it does and what undoes it.

The CLI's `node` and `router` subcommands, the dashboard's keys, buttons and command
palette, the served feed and the drills all read this table; `deployment.operate` runs an
action by calling what its entry holds (nothing dispatches on an action's name).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ecmptui.family import Family
from ecmptui.node import faults

if TYPE_CHECKING:  # a node is an SSH session: asyncssh loads when one is opened
    from ecmptui.node.server import Node

NodeStep = Callable[["Node"], Awaitable[str]]  # runs on an open node; says what it did
# the same, narrowed to one address family (`--family`: withdraw, announce, shutdown, start)
FamilyStep = Callable[["Node", Family], Awaitable[str]]


def _which(family: Family | None, what: str) -> str:
    return what if family is None else f"the {family.api.replace('ip', 'IP')} {what}"


def _eip(family: Family | None) -> str:
    """The EIP's name in an outcome: "the EIP", or "the IPv6 EIP" for one family."""
    return "the EIP" if family is None else _which(family, "EIP")


async def _withdraw(node: Node, family: Family | None = None) -> str:
    await node.withdraw(family)
    return f"stopped announcing {_eip(family)} (BGP session stays up)"


async def _announce(node: Node, family: Family | None = None) -> str:
    await node.announce(family)
    return f"announcing {_eip(family)} again"


async def _shutdown(node: Node, family: Family | None = None) -> str:
    await node.shutdown(family)
    return f"{_which(family, 'BGP session(s)')} shut down"


async def _start(node: Node, family: Family | None = None) -> str:
    await node.start(family)
    return f"{_which(family, 'BGP session(s)')} started"


async def _restore(node: Node) -> str:
    undone = await faults.restore(node)
    return f"restored ({', '.join(undone)})" if undone else "nothing to restore"


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
    title: str  # "Kill the BGP daemon on" + node name, in the palette and the timeline
    button: str | None  # the Traffic screen's button label (None: no button)
    kind: Kind
    help: str
    undo: str | None = None  # the action that puts the node back (drills run it)
    out_of_service: bool = True
    operator_only: bool = True  # every action changes something: never for viewers
    key: str | None = None  # the Traffic screen's key for the selected node
    footer: bool = False  # its key is shown in the Footer (80 columns: the common ones)
    run: NodeStep | None = None  # what it does over SSH (None: through the API, a device)
    run_family: FamilyStep | None = None  # the same for one family (None: not narrowable)
    # the service fails while BIRD keeps announcing: a node's own health check withdraws it
    health_catches: bool = False

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
            run=_withdraw,
            run_family=_withdraw,
            footer=True,
        ),
        Action(
            "announce",
            "Announce",
            "Announce",
            Kind.NODE,
            "announce the EIP again",
            out_of_service=False,
            key="a",
            run=_announce,
            run_family=_announce,
            footer=True,
        ),
        Action(
            "shutdown",
            "Shut down BGP on",
            None,
            Kind.NODE,
            "take the node's BGP session(s) down",
            undo="start",
            key="s",
            run=_shutdown,
            run_family=_shutdown,
        ),
        Action(
            "start",
            "Start BGP on",
            None,
            Kind.NODE,
            "bring the node's BGP session(s) up",
            out_of_service=False,
            key="S",
            run=_start,
            run_family=_start,
        ),
        Action(
            "kill-bird",
            "Kill the BGP daemon on",
            "Kill",
            Kind.FAULT,
            "the BGP daemon killed with SIGKILL (BIRD; FRR's bgpd and bfdd) and kept down "
            "until restore",
            undo="restore",
            key="k",
            run=faults.kill_bird,
        ),
        Action(
            "freeze-bird",
            "Freeze the BGP daemon on",
            "Freeze",
            Kind.FAULT,
            "the BGP daemon stopped with SIGSTOP (BIRD; FRR's bgpd and bfdd): its sessions "
            "stall silently",
            undo="restore",
            key="f",
            run=faults.freeze_bird,
        ),
        Action(
            "isolate",
            "Isolate",
            "Isolate",
            Kind.FAULT,
            "the node drops everything on its uplink (nftables), mgmt stays reachable",
            undo="restore",
            key="i",
            run=faults.isolate,
        ),
        Action(
            "stop-nginx",
            "Stop nginx on",
            "Stop web",
            Kind.FAULT,
            "nginx stopped while the routing daemon keeps announcing",
            undo="restore",
            key="n",
            run=faults.stop_nginx,
            health_catches=True,
        ),
        Action(
            "restore",
            "Restore",
            "Restore",
            Kind.RESTORE,
            "undo every fault on the node",
            out_of_service=False,
            key="r",
            run=_restore,
            footer=True,
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


class CoreRouters(Protocol):
    """What router actions act on: the core routers of a target that owns them (the lab)."""

    def kill_bird(self, router: str) -> None: ...

    def freeze_bird(self, router: str) -> None: ...

    def isolate(self, router: str) -> None: ...

    def restore(self, router: str) -> list[str]: ...


RouterStep = Callable[[CoreRouters, str], str]  # runs on a router; says what it did


def _router_fault(fault: str, inject: Callable[[CoreRouters, str], None]) -> RouterStep:
    def run(routers: CoreRouters, router: str) -> str:
        inject(routers, router)
        return f"fault {fault} injected (undo: ecmptui router restore {router})"

    return run


def _router_restore(routers: CoreRouters, router: str) -> str:
    undone = routers.restore(router)
    return f"restored ({', '.join(undone)})" if undone else "nothing to restore"


@dataclass(frozen=True)
class RouterAction:
    """A lab-only action on one of the two core routers."""

    name: str
    title: str  # "Kill BIRD on" + router name
    button: str
    help: str
    run: RouterStep
    fault: bool = True  # it breaks the router (the dashboard asks first); else: restore


ROUTER_ACTIONS: dict[str, RouterAction] = {
    a.name: a
    for a in [
        RouterAction(
            "kill-bird",
            "Kill BIRD on",
            "Kill",
            "the router's BIRD killed (and kept down until restore)",
            _router_fault("kill-bird", lambda r, name: r.kill_bird(name)),
        ),
        RouterAction(
            "freeze-bird",
            "Freeze BIRD on",
            "Freeze",
            "the router's BIRD stopped with SIGSTOP: its sessions stall silently",
            _router_fault("freeze-bird", lambda r, name: r.freeze_bird(name)),
        ),
        RouterAction(
            "isolate",
            "Isolate",
            "Isolate",
            "the router drops everything on its fabric link",
            _router_fault("isolate", lambda r, name: r.isolate(name)),
        ),
        RouterAction(
            "restore",
            "Restore",
            "Restore",
            "undo every fault on the router",
            _router_restore,
            fault=False,
        ),
    ]
}
ROUTER_FAULTS = tuple(a.name for a in ROUTER_ACTIONS.values() if a.fault)
