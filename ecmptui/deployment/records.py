"""What a deployment is made of: its EIP and its nodes (the records every target's
inventory gives, whatever found them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ecmptui.errors import EcmpError
from ecmptui.family import Family


@dataclass
class NodeRecord:
    name: str
    index: int
    device_id: str
    mgmt_address: str
    private_address: str | None
    private_gateway: str | None
    state: str
    peers: list[str] = field(default_factory=list)
    public_ipv6: str | None = None  # the server's own IPv6 address (Metal's /127)
    gateway6: str | None = None  # its IPv6 gateway: the IPv6 peers' static routes go there

    def gateway_for(self, family: Family) -> str | None:
        """The gateway its multihop peers of `family` are routed through."""
        return self.private_gateway if family is Family.IPV4 else self.gateway6

    def next_hop_for(self, family: Family) -> str | None:
        """Where the fabric forwards the EIP of `family` to this node: its private address
        (IPv4), its public IPv6 address (IPv6)."""
        return self.private_address if family is Family.IPV4 else self.public_ipv6


@dataclass
class Inventory:
    target: str
    eip: str | None
    eip_id: str | None
    nodes: list[NodeRecord]
    eip6: str | None = None  # the IPv6 EIP of a dual-stack (or IPv6) deployment
    eip6_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"target": self.target, "eip": self.eip, "nodes": [asdict(n) for n in self.nodes]}
        if self.eip6:
            out["eip6"] = self.eip6
        return out

    @property
    def eips(self) -> dict[Family, str]:
        """The deployment's EIP per family it serves (what it remembers of its families)."""
        found = {Family.IPV4: self.eip, Family.IPV6: self.eip6}
        return {f: a for f, a in found.items() if a}

    @property
    def families(self) -> tuple[Family, ...]:
        return tuple(self.eips)

    def eip_for(self, family: Family) -> str:
        """The EIP of `family`, or a clear error when the deployment does not serve it."""
        eip = self.eips.get(family)
        if eip is None:
            served = ", ".join(f.api for f in self.eips) or "nothing provisioned"
            raise EcmpError(f"this deployment has no {family.api} EIP (it serves: {served})")
        return eip

    def node(self, name: str) -> NodeRecord:
        """Find a node by hostname, index (`2`) or `node2`."""
        for n in self.nodes:
            if name in (n.name, str(n.index), f"node{n.index}"):
                return n
        names = ", ".join(n.name for n in self.nodes) or "none provisioned"
        raise EcmpError(f"no node {name!r} (nodes: {names})")
