"""One snapshot of the deployment: BIRD on every node, the API's sessions, the lab router."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from ecmptui.deployment.inventory import Inventory, NodeRecord
from ecmptui.deployment.metal import session_status
from ecmptui.display import health_label  # noqa: F401 - re-exported
from ecmptui.errors import EcmpError
from ecmptui.node import bird

if TYPE_CHECKING:
    from ecmptui.deployment.target import AnyDeployment
from ecmptui.node.health import health_state


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
class NodeStatus:
    name: str
    index: int
    device_id: str
    mgmt_address: str
    bgp_state: str = "unknown"      # the first peer's state, or "unreachable"
    since: str = ""
    routes_exported: int = 0
    hold_timer: str | None = None
    last_error: str | None = None
    api_status: str = "unknown"
    withdrawn: bool = False
    eip_on_lo: bool | None = None
    health: dict | None = None      # the node's health check: state, since, transitions, ...
    peers: list[PeerStatus] = field(default_factory=list)
    error: str | None = None


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
    try:
        async with (opener or d.node)(rec) as node:
            peers = [_peer(p) for p in await node.protocols() if p.proto == "BGP"]
            st.withdrawn = await node.withdrawn()
            st.eip_on_lo = await node.has_eip(eip) if eip else None
            st.health = await health_state(node)
    except EcmpError as exc:
        st.bgp_state = "unreachable" if "SSH" in str(exc) or "host key" in str(exc) \
            else "not running"
        st.error = str(exc)
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


def router_status(d: AnyDeployment, inv: Inventory) -> dict | None:
    """Lab only: the core router's FIB next hops for the EIP, mapped to node names."""
    if not d.target.caps.router_view:
        return None
    lab = d.target.lab()
    assert lab is not None
    from ecmptui.lab.router import CoreRouter

    hops = CoreRouter(lab).nexthops(f"{inv.eip}/32") if inv.eip else []
    by_addr = {n.private_address: n.name for n in inv.nodes}
    return {"nexthops": hops, "nodes": [by_addr.get(h, h) for h in hops]}


async def gather(d: AnyDeployment, opener: NodeOpener | None = None) -> dict:
    """The `status --json` document. `opener` may hand out pooled node connections."""
    inv = await d.ainventory()
    nodes = await asyncio.gather(*(node_status(d, r, inv.eip, opener) for r in inv.nodes))
    router = await asyncio.to_thread(router_status, d, inv)
    return {"target": inv.target, "eip": inv.eip,
            "nodes": [asdict(n) for n in nodes], "router": router}
