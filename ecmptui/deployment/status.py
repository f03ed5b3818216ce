"""One snapshot of the deployment: BIRD on every node, the API's sessions, the lab router."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING

from ecmptui.deployment.inventory import Inventory, NodeRecord
from ecmptui.deployment.metal import session_status
from ecmptui.errors import EcmpError
from ecmptui.node import bird

if TYPE_CHECKING:
    from ecmptui.deployment.target import AnyDeployment
from ecmptui.node.health import health_state
from ecmptui.node.server import NodeError, NodeFailure


@dataclass
class PeerStatus:
    protocol: str
    bgp_state: str
    since: str
    neighbor: str | None
    routes_imported: int
    routes_exported: int
    hold_timer: str | None
    last_error: str | None


@dataclass
class HealthStatus:
    """The node's health check as its state file says, plus whether its unit runs."""

    state: str                      # up | down | stopped
    alive: bool = True
    since: float | str | None = None
    transitions: int = 0
    last_error: str | None = None
    interval_ms: int | None = None
    timeout_ms: int | None = None
    rise: int | None = None
    fall: int | None = None
    updated: float | None = None

    @classmethod
    def from_state(cls, data: dict | None) -> HealthStatus | None:
        if not data or "state" not in data:
            return None
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def label(self) -> str:
        """One word: up, down, stopped, or "not running"."""
        return self.state if self.alive else "not running"


@dataclass
class NodeStatus:
    name: str
    index: int
    device_id: str
    mgmt_address: str
    bgp_state: str = "unknown"      # the first peer's state, "unreachable" or "not running"
    since: str = ""
    routes_exported: int = 0
    hold_timer: str | None = None
    last_error: str | None = None
    api_status: str = "unknown"
    withdrawn: bool = False
    eip_on_lo: bool | None = None
    health: HealthStatus | None = None
    peers: list[PeerStatus] = field(default_factory=list)
    error: str | None = None

    @property
    def established(self) -> bool:
        return self.bgp_state == "Established"


@dataclass
class CoreView:
    """One core router as the lab sees it: its BIRD, and the nodes it learned the EIP from."""

    name: str
    bgp_address: str
    bird: str                       # running | frozen | not running | down
    learned_from: list[str] = field(default_factory=list)


@dataclass
class RouterStatus:
    """The lab's routing for the EIP: the fabric's FIB next hops (and whose they are), and
    each core router's view."""

    nexthops: list[str]
    nodes: list[str]
    cores: list[CoreView] = field(default_factory=list)


@dataclass
class DeploymentStatus:
    """One snapshot of the whole deployment (`status --json` is `to_json()` of it)."""

    target: str
    eip: str | None
    nodes: list[NodeStatus]
    router: RouterStatus | None = None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> DeploymentStatus:
        """The inverse of `to_json` (a served session gets its status this way)."""
        def node(n: dict) -> NodeStatus:
            health = HealthStatus.from_state(n.get("health"))
            peers = [PeerStatus(**p) for p in n.get("peers") or []]
            return NodeStatus(**{**n, "health": health, "peers": peers})

        r = d.get("router")
        router = None if r is None else RouterStatus(
            r["nexthops"], r["nodes"], [CoreView(**c) for c in r.get("cores") or []])
        return cls(d["target"], d.get("eip"), [node(n) for n in d.get("nodes") or []], router)

    def node(self, name: str) -> NodeStatus | None:
        return next((n for n in self.nodes if n.name == name), None)


@dataclass(frozen=True)
class StatusEvent:
    """One change between two snapshots. `kind`: node (first seen), bgp, eip, api, health,
    router. `old`/`new` are the values before and after (strings, for the log)."""

    kind: str
    node: str | None
    old: str | None
    new: str
    why: str | None = None


def diff(old: DeploymentStatus | None, new: DeploymentStatus) -> list[StatusEvent]:
    """What changed from `old` to `new` (everything is new when `old` is None)."""
    events: list[StatusEvent] = []
    before = {n.name: n for n in old.nodes} if old is not None else {}
    for n in new.nodes:
        prev = before.get(n.name)
        if prev is None:
            events.append(StatusEvent("node", n.name, None, n.bgp_state))
            continue
        if prev.bgp_state != n.bgp_state:
            events.append(StatusEvent("bgp", n.name, prev.bgp_state, n.bgp_state,
                                      n.last_error))
        if prev.withdrawn != n.withdrawn:
            events.append(StatusEvent("eip", n.name, eip_label(prev.withdrawn),
                                      eip_label(n.withdrawn)))
        if prev.api_status != n.api_status:
            events.append(StatusEvent("api", n.name, prev.api_status, n.api_status))
        h_old = prev.health.state if prev.health else None
        h_new = n.health.state if n.health else None
        if h_new is not None and h_old != h_new:
            events.append(StatusEvent("health", n.name, h_old, h_new))
    if old is not None and new.router is not None:
        old_nodes = old.router.nodes if old.router is not None else None
        if old_nodes != new.router.nodes:
            events.append(StatusEvent("router", None, ", ".join(old_nodes or []) or None,
                                      ", ".join(new.router.nodes) or "none"))
    return events


def eip_label(withdrawn: bool) -> str:
    return "withdrawn" if withdrawn else "announced"


def _peer(p: bird.ProtocolInfo) -> PeerStatus:
    return PeerStatus(p.name, p.bgp_state or p.info.split(" ")[0] or p.state, p.since,
                      p.neighbor_address, p.routes_imported, p.routes_exported, p.hold_timer,
                      p.last_error)


NodeOpener = Callable[[NodeRecord], AbstractAsyncContextManager]


async def node_status(d: AnyDeployment, rec: NodeRecord, eip: str | None,
                      opener: NodeOpener | None = None) -> NodeStatus:
    st = NodeStatus(rec.name, rec.index, rec.device_id, rec.mgmt_address)
    if d.client is None:
        st.api_status = "n/a"  # static target: no API
    else:
        try:
            sessions = await d.client.acall(d.client.sessions, rec.device_id)
            st.api_status = ",".join(session_status(s.get("status")) for s in sessions) \
                or "none"
        except EcmpError as exc:
            st.api_status = "error"
            st.error = str(exc)
    bird_down: NodeError | None = None
    try:
        async with (opener or d.node)(rec) as node:
            # what the node says about itself, also when its BIRD is down
            st.withdrawn = await node.withdrawn()
            st.eip_on_lo = await node.has_eip(eip) if eip else None
            st.health = HealthStatus.from_state(await health_state(node))
            try:
                peers = [_peer(p) for p in await node.protocols() if p.proto == "BGP"]
            except NodeError as exc:
                if exc.reason is NodeFailure.UNREACHABLE:
                    raise
                bird_down, peers = exc, []
    except NodeError as exc:
        st.bgp_state, st.error = "unreachable", str(exc)
        return st
    if bird_down is not None:
        st.bgp_state, st.error = "not running", str(bird_down)
        st.last_error = str(bird_down).split(": ", 1)[-1]
        return st
    st.peers = peers
    if peers:
        first = peers[0]
        st.bgp_state, st.since, st.hold_timer = first.bgp_state, first.since, first.hold_timer
        st.last_error = next((p.last_error for p in peers if p.last_error), None)
        st.routes_exported = sum(p.routes_exported for p in peers)
    else:
        st.bgp_state = "no BGP protocol"
    return st


def router_status(d: AnyDeployment, inv: Inventory) -> RouterStatus | None:
    """Lab only: the core router's FIB next hops for the EIP, mapped to node names."""
    if not d.target.caps.router_view:
        return None
    lab = d.target.lab()
    assert lab is not None
    from ecmptui.lab import router

    hops = router.fib_nexthops(lab, f"{inv.eip}/32") if inv.eip else []
    by_addr = {n.private_address: n.name for n in inv.nodes}
    by_protocol = {f"s{int(n.private_address.split('.')[2]) - 10}": n.name
                   for n in inv.nodes if n.private_address}
    cores = []
    for name in router.ROUTERS:
        b = router.core(lab, name)
        learned = router.learned_from(lab, name, inv.eip) if inv.eip else []
        cores.append(CoreView(name, router.ROUTER_PEER_IPS[name], b.state(),
                              [by_protocol.get(p, p) for p in learned]))
    return RouterStatus(hops, [by_addr.get(h, h) for h in hops], cores)


async def gather(d: AnyDeployment, opener: NodeOpener | None = None) -> DeploymentStatus:
    """One snapshot of the deployment. `opener` may hand out pooled node connections."""
    inv = await d.ainventory()
    nodes = await asyncio.gather(*(node_status(d, r, inv.eip, opener) for r in inv.nodes))
    router = await asyncio.to_thread(router_status, d, inv)
    return DeploymentStatus(inv.target, inv.eip, list(nodes), router)
