"""Gathering a status snapshot: the routing daemon on every node over SSH, the API's sessions, the
routers where the target shows them (the I/O behind `status.DeploymentStatus`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

from ecmptui.deployment.metal import session_status
from ecmptui.deployment.records import Inventory, NodeRecord
from ecmptui.deployment.status import (
    DeploymentStatus,
    HealthStatus,
    NodeStatus,
    Observed,
    PeerStatus,
    RouterStatus,
)
from ecmptui.errors import EcmpError
from ecmptui.node.faults import active_faults
from ecmptui.node.health import health_state
from ecmptui.node.routing import Session
from ecmptui.node.server import NodeError, NodeFailure

if TYPE_CHECKING:
    from ecmptui.deployment.port import Deployment


def _peer(s: Session) -> PeerStatus:
    return PeerStatus(
        s.name,
        s.state,
        s.since,
        s.neighbor,
        s.routes_imported,
        s.routes_exported,
        s.hold_timer,
        s.last_error,
        s.family.value,
    )


NodeOpener = Callable[[NodeRecord], AbstractAsyncContextManager]


async def api_status(d: Deployment, rec: NodeRecord) -> tuple[str, str | None]:
    """The API's view of a node's BGP sessions ("up,down": one word per router), and the
    error if the API could not say."""
    if d.client is None:
        return "n/a", None  # static target: no API
    try:
        sessions = await d.client.acall(d.client.sessions, rec.device_id)
    except EcmpError as exc:
        return "error", str(exc)
    return ",".join(session_status(s.get("status")) for s in sessions) or "none", None


async def node_status(
    d: Deployment,
    rec: NodeRecord,
    eips: list[str],
    opener: NodeOpener | None = None,
    with_api: bool = True,
) -> NodeStatus:
    """One node as it says (over SSH) and, `with_api`, as the API says."""
    st = NodeStatus(
        rec.name, rec.index, rec.device_id, rec.mgmt_address, device_state=rec.state or "active"
    )
    if with_api:
        st.api_status, st.error = await api_status(d, rec)
    if st.device_state == "failed" and d.client is not None:
        try:
            st.device_error = await d.client.acall(d.client.device_failure, rec.device_id)
        except EcmpError as exc:
            st.device_error = str(exc)
        st.bgp_state, st.error = Observed.DEVICE_FAILED, st.device_error
        return st
    daemon_down: NodeError | None = None
    try:
        async with (opener or d.node)(rec) as node:
            # what the node says about itself, also when its routing daemon is down
            st.daemon = node.daemon.name
            st.withdrawn = await node.withdrawn()
            st.withdrawn_families = sorted(f.value for f in await node.withdrawn_families())
            st.eip_on_lo = not await node.missing_eips(eips) if eips else None
            st.health = HealthStatus.from_state(await health_state(node))
            st.faults = await active_faults(node)
            try:
                peers = [_peer(s) for s in await node.sessions()]
                st.daemon = node.daemon.name  # asking may have found it switched
                bfd = await node.bfd_sessions()
                if bfd:
                    st.bfd = f"{sum(state == 'Up' for _, state in bfd)}/{len(bfd)} up"
            except NodeError as exc:
                if exc.reason is NodeFailure.UNREACHABLE:
                    raise
                daemon_down, peers = exc, []
    except NodeError as exc:
        st.bgp_state, st.error = Observed.UNREACHABLE, str(exc)
        return st
    if daemon_down is not None:
        st.bgp_state, st.error = Observed.NOT_RUNNING, str(daemon_down)
        st.last_error = str(daemon_down).split(": ", 1)[-1]
        return st
    st.peers = peers
    if peers:
        # the node serves while any router has its session: its state is the best one
        first = next((p for p in peers if p.bgp_state == "Established"), peers[0])
        st.bgp_state, st.since, st.hold_timer = first.bgp_state, first.since, first.hold_timer
        st.last_error = next(
            (p.last_error for p in peers if p.last_error and p.bgp_state != "Established"), None
        )
        st.routes_exported = sum(p.routes_exported for p in peers)
    else:
        st.bgp_state = Observed.NO_BGP
    return st


async def wait_fabric_drops(d: Deployment, eip: str, gateway: str, timeout: float) -> bool:
    """Until the forwarding router forwards nothing for the EIP to `gateway` (bounded).
    False where the routers cannot be seen, or when it still does at the timeout."""
    routers = d.target.routers()
    if routers is None:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gateway not in await asyncio.to_thread(routers.next_hops, f"{eip}/32"):
            return True
        await asyncio.sleep(0.05)
    return False


def router_status(d: Deployment, inv: Inventory) -> RouterStatus | None:
    """The routers' view of the EIP (next hops by node name), where they can be seen."""
    routers = d.target.routers()
    return routers.status(inv) if routers is not None else None


async def gather(
    d: Deployment, opener: NodeOpener | None = None, node_timeout: float = 10.0
) -> DeploymentStatus:
    """One snapshot of the deployment. `opener` may hand out pooled node connections; a
    node that has not answered within `node_timeout` is `unresponsive` (a hung daemon blocks
    `birdc` or `vtysh` for much longer)."""
    notes: list[str] = []
    if d.client is None:
        inv = await d.ainventory()
    else:  # an API outage: the nodes are still there, ask them (and say so)
        inv = await asyncio.to_thread(d.inventory_or_last, notes.append)

    async def one(rec: NodeRecord) -> NodeStatus:
        try:
            st = await asyncio.wait_for(
                node_status(d, rec, list(inv.eips.values()), opener, with_api=not notes),
                node_timeout,
            )
        except TimeoutError:
            return NodeStatus(
                rec.name,
                rec.index,
                rec.device_id,
                rec.mgmt_address,
                bgp_state=Observed.UNRESPONSIVE,
                error=f"no answer within {node_timeout:g} s (routing daemon or SSH hung)",
            )
        st.updated = time.time()
        return st

    nodes = await asyncio.gather(*(one(r) for r in inv.nodes))
    router = await asyncio.to_thread(router_status, d, inv)
    return DeploymentStatus(
        inv.target,
        inv.eip,
        list(nodes),
        router,
        updated=time.time(),
        error="; ".join(notes) or None,
        eip6=inv.eip6,
    )
