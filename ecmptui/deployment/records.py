"""What a deployment is made of: its EIP and its nodes (the records every target's
inventory gives, whatever found them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ecmptui.errors import EcmpError


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


@dataclass
class Inventory:
    target: str
    eip: str | None
    eip_id: str | None
    nodes: list[NodeRecord]

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "eip": self.eip, "nodes": [asdict(n) for n in self.nodes]}

    def node(self, name: str) -> NodeRecord:
        """Find a node by hostname, index (`2`) or `node2`."""
        for n in self.nodes:
            if name in (n.name, str(n.index), f"node{n.index}"):
                return n
        names = ", ".join(n.name for n in self.nodes) or "none provisioned"
        raise EcmpError(f"no node {name!r} (nodes: {names})")
