"""Whether a node is serving: its BGP sessions Established and the EIP exported."""

from __future__ import annotations

from ecmptui.errors import EcmpError
from ecmptui.node.server import Node


async def node_verified(node: Node) -> tuple[bool, str]:
    try:
        protos = await node.sessions()
    except EcmpError as exc:
        return False, str(exc)
    if not protos:
        return False, "no BGP protocol"
    down = [p for p in protos if not p.established]
    if down:
        p = down[0]
        return False, f"{p.name} {p.state}" + (f" ({p.last_error})" if p.last_error else "")
    if await node.withdrawn():
        return True, "Established (withdrawn by operator)"
    # a family the operator withdrew alone exports nothing, on purpose
    held = await node.withdrawn_families()
    exporting = [p for p in protos if p.family not in held]
    if sum(p.routes_exported for p in exporting) < len(exporting):
        return False, "Established but the EIP is not exported"
    kept = f" ({', '.join(f.api for f in sorted(held))} withdrawn by operator)" if held else ""
    return True, f"Established, EIP exported to {len(exporting)} peer(s){kept}"
