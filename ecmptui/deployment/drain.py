"""`ecmptui node drain`: take a node out without breaking the connections it holds, where
the router can do that.

On a resilient-ECMP router (the lab with `--ecmp resilient`) the node's weight drops to the
minimum with no unbalanced timer, so its buckets move to the others only as they go idle:
connections it already holds stay on it, new ones go elsewhere. The drain waits until the
node holds no client connection (or the timeout), then withdraws it and says how many
connections that still broke, and why.

A hash-threshold router cannot do this: any change to its set of next hops rehashes, so a
drain there is only a withdraw. The drain says so and changes nothing.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from ecmptui.actions import ACTIONS
from ecmptui.deployment import operate
from ecmptui.deployment.gather import wait_fabric_drops
from ecmptui.deployment.port import Deployment
from ecmptui.deployment.records import NodeRecord
from ecmptui.errors import EcmpError
from ecmptui.family import Family, url_host
from ecmptui.node.server import Node

DRAIN_WEIGHT = 1  # the lowest a group member can have (0 is not allowed)

UNSEEN_REFUSAL = (
    "ecmptui cannot see this router's ECMP (it sees the fabric only in the lab): a drain "
    "needs resilient next-hop groups whose weights it can lower, so it cannot promise not to "
    "break connections here; `ecmptui node withdraw` takes the node out at once"
)
HASH_REFUSAL = (
    "this router does hash-threshold ECMP: every change to its set of next hops rehashes "
    "connections (also those of the other nodes), so a drain cannot move the node's "
    "connections gracefully; `ecmptui node withdraw` takes it out at once, and a lab started "
    "with `lab up --ecmp resilient` can drain"
)


@dataclass
class DrainResult:
    node: str
    drained: bool  # no client connection left when it was withdrawn
    waited_s: float
    open_at_start: int
    open_at_withdraw: int  # connections the withdraw broke (counted once it applied)
    why: str
    timed_out: bool = False  # the timeout ended the wait, not the last connection

    def short(self) -> str:
        """The result in a few words (the dashboard's timeline; `line` says why)."""
        if self.timed_out:
            return (
                f"NOT drained: timeout after {self.waited_s:.0f} s, {self.open_at_withdraw} broken"
            )
        return f"drained in {self.waited_s:.1f} s, {self.open_at_withdraw} broken"

    def line(self) -> str:
        if self.timed_out:
            return (
                f"{self.node}: NOT drained: the timeout ended the wait after "
                f"{self.waited_s:.1f} s; withdrawn anyway, {self.open_at_withdraw} "
                f"connection(s) broken ({self.why})"
            )
        return (
            f"{self.node}: drained in {self.waited_s:.1f} s, withdrawn; "
            f"{self.open_at_withdraw} connection(s) broken ({self.why})"
        )


ACTIVE_MS = 3000  # a connection that received nothing for longer is not counted


async def client_connections(node: Node, eips: list[str]) -> int:
    """Live client connections to the EIPs' port 80 on the node: established and active in
    the last ACTIVE_MS (nginx keeps idle keep-alive connections whose client went away for
    a long time; those are not flows any more)."""
    res = await node.run("ss", "-Htni", "state", "established", "( sport = :80 )", check=False)
    count, mine = 0, False
    ours = [f"{url_host(e)}:80 " for e in eips]  # ss writes [v6]:80 as a URL does
    for line in str(res.stdout).splitlines():
        if not line.startswith(("\t", " ")):
            mine = any(o in line + " " for o in ours)
            continue
        m = re.search(r"lastrcv:(\d+)", line)
        if mine and m and int(m.group(1)) <= ACTIVE_MS:
            count += 1
    return count


async def drain(
    d: Deployment,
    rec: NodeRecord,
    eips: list[str],
    timeout: float,
    on_progress: Callable[[str], None] | None = None,
) -> DrainResult:
    """Drain `rec` (resilient lab router only); see the module's docstring."""
    routers = d.target.routers()
    if routers is None:
        raise EcmpError(f"cannot drain {rec.name}: {UNSEEN_REFUSAL}")
    if routers.ecmp_mode() != "resilient":
        raise EcmpError(f"cannot drain {rec.name}: {HASH_REFUSAL}")
    if rec.private_address is None:
        raise EcmpError(f"{rec.name}: no private address in the inventory")
    # the fabric's next hop for the node, per EIP: its private address (IPv4), its public
    # IPv6 address (IPv6)
    gateways = {e: rec.next_hop_for(Family.of(e)) for e in eips}
    say = on_progress or (lambda _m: None)
    t0 = time.monotonic()

    async def weight(value: int | None) -> None:
        for gateway in {g for g in gateways.values() if g}:
            await asyncio.to_thread(routers.set_weight, gateway, value)

    async with d.node(rec) as node:
        start = await client_connections(node, eips)
        await weight(DRAIN_WEIGHT)
        say(
            f"{rec.name}: weight {DRAIN_WEIGHT}: new connections go to the others, its "
            f"{start} open one(s) stay until they end (timeout {timeout:.0f} s)"
        )
        try:
            left = start
            while time.monotonic() - t0 < timeout:
                left = await client_connections(node, eips)
                if left == 0:
                    break
                await asyncio.sleep(0.5)
            await operate.on_node(node, ACTIONS["withdraw"])
            # counted once the router has let go of the node: its sockets of the connections
            # the withdraw broke stay established there (the resets come from the others),
            # so this also counts one that opened on its bucket just before the withdraw
            for eip, gateway in gateways.items():
                if gateway:
                    await wait_fabric_drops(d, eip, gateway, 5.0)
            at_withdraw = await client_connections(node, eips)
        finally:
            # the weight is the agent's business again; the node is withdrawn by now (or
            # the drain failed and it keeps serving at full weight)
            await weight(None)
    waited = time.monotonic() - t0
    if at_withdraw == 0:
        why = "none were open"
    elif waited >= timeout:
        why = (
            f"still open after {timeout:.0f} s: long-lived connections, or new ones on "
            "the bucket a drained node keeps (its weight cannot go below 1)"
        )
    else:
        why = "opened on the bucket a drained node keeps, just before the withdraw"
    return DrainResult(
        rec.name,
        at_withdraw == 0,
        waited,
        start,
        at_withdraw,
        why,
        timed_out=left > 0 and waited >= timeout,
    )
