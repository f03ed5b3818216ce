"""The deployment port: what every target's deployment offers the rest of ecmptui.

Adapters implement it beside what they adapt: `inventory.ApiDeployment` (any Metal-compatible
API, the lab's included), `static.StaticDeployment` (servers listed in the config). A target
that owns its routers (the lab) also hands out a `RouterView`; code asks for it and does
without when there is none, never asks which kind of target it has.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ecmptui.actions import Action, CoreRouters, available
from ecmptui.config import Settings
from ecmptui.errors import EcmpError
from ecmptui.family import Family

if TYPE_CHECKING:
    from ecmptui.deployment.metal import MetalClient
    from ecmptui.deployment.records import Inventory, NodeRecord
    from ecmptui.deployment.status import RouterStatus
    from ecmptui.node.server import Node


class FibWatch(Protocol):
    """A watcher of the forwarding router's route for the EIP (when it changed)."""

    address: str  # the EIP watched

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def first_change_after(self, t: float) -> float | None:
        """ms from monotonic time `t` to the first change after it (None: none yet)."""
        ...


class RouterView(CoreRouters, Protocol):
    """The provider's routers, where the target owns them: their FIB, their BGP, the ECMP
    weights and the faults the router actions inject (the lab's two cores and its fabric)."""

    def names(self) -> list[str]:
        """The core routers' names (what router faults take)."""
        ...

    def status(self, inv: Inventory) -> RouterStatus:
        """The fabric's next hops for the EIP and each core's view, by node name."""
        ...

    def next_hops(self, prefix: str) -> list[str]:
        """The forwarding router's next hops (gateways) for `prefix` now."""
        ...

    def ecmp_mode(self) -> str:
        """ "hash" or "resilient"."""
        ...

    def set_weight(self, gateway: str, weight: int | None) -> None:
        """Resilient ECMP: pin a next hop's weight (None: back to the routing's own)."""
        ...

    def fib_watch(self, eip: str) -> FibWatch: ...


class Deployment(Protocol):
    """One target's deployment: its inventory, SSH access to its nodes, where to probe it."""

    @property
    def settings(self) -> Settings: ...

    @property
    def target(self) -> Target: ...

    @property
    def client(self) -> MetalClient | None:
        """The provider API (None: no API, e.g. static)."""
        ...

    def inventory(self) -> Inventory: ...

    async def ainventory(self) -> Inventory: ...

    def inventory_or_last(self, warn: Callable[[str], None]) -> Inventory:
        """The inventory, or the last one known when the API cannot be reached (said
        through `warn`)."""
        ...

    async def connect(self, rec: NodeRecord) -> Node:
        """A new SSH connection to one node (the caller closes it)."""
        ...

    def node(self, rec: NodeRecord) -> AbstractAsyncContextManager[Node]:
        """An SSH session to one node for the length of a `with` block."""
        ...

    def probe_target(self, inv: Inventory, family: Family | None = None) -> tuple[str, str | None]:
        """The URL to probe (the EIP of `family`; None: the deployment's first) and the
        network namespace to probe it from (None: this one)."""
        ...

    async def reboot(self, rec: NodeRecord, timeout: float = 90.0) -> float: ...

    def forget_host(self, address: str) -> None:
        """A node at `address` was deleted: forget its pinned host key."""
        ...


class TargetKind(enum.Enum):
    LAB = "lab"
    METAL = "metal"
    STATIC = "static"


@dataclass(frozen=True)
class Capabilities:
    """What a target offers.

    - faults: the target owns the machines (lab faults, restore, BFD drills)
    - router_view: the core router's FIB can be read (next hops per EIP)
    - api: a provider API (provision, deprovision, reboot, the API's view of sessions)
    - read_only_default: the dashboard changes nothing unless the config says otherwise
    """

    faults: bool
    router_view: bool
    api: bool
    read_only_default: bool


@dataclass(frozen=True)
class Timing:
    """How a target's API is polled while provisioning (a real one takes minutes)."""

    poll: float
    active_timeout: float  # device created -> active
    verify_timeout: float  # configured -> sessions Established


def lab_label(name: str) -> str:
    """A lab deployment's name (also its writer lock's key: `lab down` takes that lock)."""
    return f"lab {name}"


class Target:
    """The adapter's shape; one subclass per kind."""

    kind: TargetKind
    caps: Capabilities
    default_families: str = "ipv4"  # what `provision` serves when neither flag nor config says

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def label(self) -> str:
        raise NotImplementedError

    def lock_key(self) -> str:
        """What names this deployment for its writer lock (the same for every operator)."""
        return self.label()

    def actions(self) -> list[Action]:
        return available(self.caps.faults, self.caps.api)

    def lab_up(self) -> bool | None:
        """Whether the lab is up; None where there is no lab."""
        return None

    def start_lab(self, progress: Callable[[str], None] | None = None) -> str:
        raise EcmpError(f"target {self.kind.value}: there is no lab to start")

    def probe_netns(self) -> str | None:
        """The network namespace to probe the EIP from (None: this one)."""
        return None

    def vantage_netns(self, vantage: str) -> str | None:
        """Where a prober of `vantage` stands, when the target has such a place (the lab's
        sites); None: where `probe_netns` says (elsewhere a vantage is only a label)."""
        return None

    def routers(self) -> RouterView | None:
        """The provider's routers, where this target owns them (the lab); else None."""
        return None

    def fib_watch(self, eip: str | None) -> FibWatch | None:
        """A watcher of the forwarding router's route for the EIP, where it can be seen."""
        routers = self.routers()
        return routers.fib_watch(eip) if routers is not None and eip else None

    def open(self) -> Deployment:
        """The deployment on this target (may need the lab up or the API reachable)."""
        raise NotImplementedError
