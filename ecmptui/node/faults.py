"""Lab faults: break a node the way an operator could break a server (systemd, nftables on
the node itself), and undo them. Only for nodes the lab owns: callers check the target."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # asyncssh loads with the first connection
    from ecmptui.node.server import Node

# Drops everything on the uplink (the BGP peer and all client traffic), nothing on mgmt0:
# the node goes silent for the router while we can still reach it to undo the fault.
ISOLATE_TABLE = "ecmptui_isolate"
ISOLATE_RULES = f"""table inet {ISOLATE_TABLE} {{
  chain input {{ type filter hook input priority -300; policy accept; iifname "eth0" drop; }}
  chain output {{ type filter hook output priority -300; policy accept; oifname "eth0" drop; }}
}}
"""


async def _recorded(node: Node, fault: str) -> str:
    """Note `fault` in the node's fault file (what status shows and restore undoes)."""
    lay = node.layout
    await node.run("sh", "-c", 'echo "$1" >> "$2"', "sh", fault, f"{lay.state_dir}/faults")
    return f"fault {fault} injected (undo: ecmptui node restore {node.name})"


async def kill_bird(node: Node) -> str:
    """The routing daemon's session processes killed with SIGKILL (BIRD; FRR's bgpd and
    bfdd), and kept down (nothing restarts them) until restore."""
    await node.run("mkdir", "-p", node.layout.state_dir)
    await node.daemon.kill(node)
    return await _recorded(node, "kill-bird")


async def freeze_bird(node: Node) -> str:
    """The routing daemon stopped with SIGSTOP (BIRD; FRR's watchfrr, bgpd and bfdd): its
    sessions stall silently."""
    await node.run("mkdir", "-p", node.layout.state_dir)
    await node.daemon.freeze(node)
    return await _recorded(node, "freeze-bird")


async def isolate(node: Node) -> str:
    """The node drops everything on its uplink; its management link stays."""
    await node.run("mkdir", "-p", node.layout.state_dir)
    await node.run("nft", "-f", "-", input=ISOLATE_RULES)
    return await _recorded(node, "isolate")


async def stop_nginx(node: Node) -> str:
    """nginx stopped while the routing daemon keeps announcing."""
    await node.run("mkdir", "-p", node.layout.state_dir)
    await node.systemctl("stop", node.layout.nginx_unit)
    return await _recorded(node, "stop-nginx")


# Written by a drill on every node while it has BFD set otherwise than the deployment had
# it: a drill that is killed (SIGKILL) leaves the marker, so status shows it and `node
# restore` puts BFD back.
DRILL_BFD = {"drill-bfd-on": False, "drill-bfd-off": True}  # marker -> BFD to restore


async def mark(node: Node, entry: str) -> None:
    """Record `entry` in the node's fault file (what status shows and restore undoes)."""
    lay = node.layout
    await node.run("mkdir", "-p", lay.state_dir)
    await node.run(
        "sh",
        "-c",
        'grep -qx "$1" "$2" 2>/dev/null || echo "$1" >> "$2"',
        "sh",
        entry,
        f"{lay.state_dir}/faults",
    )


async def unmark(node: Node, entry: str) -> None:
    await node.run("sed", "-i", f"/^{entry}$/d", f"{node.layout.state_dir}/faults", check=False)


async def active_faults(node: Node) -> list[str]:
    text = await node.read(f"{node.layout.state_dir}/faults")
    return sorted(set((text or "").split()))


async def restore(node: Node) -> list[str]:
    """Undo every fault: lift isolation, thaw or revive the routing daemon, start nginx.
    Returns what was undone (empty when the node was healthy; a drill's BFD markers are the
    caller's)."""
    lay = node.layout
    undone = []
    recorded = await active_faults(node)
    res = await node.run("nft", "delete", "table", "inet", ISOLATE_TABLE, check=False)
    if res.exit_status == 0:
        undone.append("isolate")
    # a kill holds FRR's supervisor stopped too: that is not a freeze
    if await node.daemon.thaw(node) and "kill-bird" not in recorded:
        undone.append("freeze-bird")
    if "kill-bird" in recorded or not await node.daemon_running():
        await node.daemon.revive(node)
        undone.append("kill-bird")
    if not await node.nginx_running():
        await node.systemctl("start", lay.nginx_unit)
        undone.append("stop-nginx")
    # a drill's markers: the caller puts BFD back (it needs the neighbor data)
    undone += [f for f in recorded if f in DRILL_BFD]
    await node.run("rm", "-f", f"{lay.state_dir}/faults")
    return undone
