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


# Keeps systemd from restarting a killed BIRD while the kill-bird fault lasts (runtime only:
# a reboot forgets it, as it would forget a crash).
NO_RESTART_DROPIN = "/run/systemd/system/{unit}.service.d/ecmptui-fault.conf"


async def _main_pid(node: Node, unit: str) -> int:
    res = await node.systemctl("show", "-p", "MainPID", "--value", unit, check=False)
    text = str(res.stdout).strip()
    return int(text) if text.isdigit() else 0


async def _recorded(node: Node, fault: str) -> str:
    """Note `fault` in the node's fault file (what status shows and restore undoes)."""
    lay = node.layout
    await node.run("sh", "-c", 'echo "$1" >> "$2"', "sh", fault, f"{lay.state_dir}/faults")
    return f"fault {fault} injected (undo: ecmptui node restore {node.name})"


async def kill_bird(node: Node) -> str:
    """BIRD killed with SIGKILL, and kept down (systemd does not restart it) until restore."""
    lay = node.layout
    await node.run("mkdir", "-p", lay.state_dir)
    await node.write(NO_RESTART_DROPIN.format(unit=lay.bird_unit), "[Service]\nRestart=no\n")
    await node.systemctl("daemon-reload")
    await node.systemctl("kill", "-s", "KILL", lay.bird_unit)
    return await _recorded(node, "kill-bird")


async def freeze_bird(node: Node) -> str:
    """BIRD stopped with SIGSTOP: its sessions stall silently."""
    await node.run("mkdir", "-p", node.layout.state_dir)
    await node.systemctl("kill", "-s", "STOP", "--kill-who=main", node.layout.bird_unit)
    return await _recorded(node, "freeze-bird")


async def isolate(node: Node) -> str:
    """The node drops everything on its uplink; its management link stays."""
    await node.run("mkdir", "-p", node.layout.state_dir)
    await node.run("nft", "-f", "-", input=ISOLATE_RULES)
    return await _recorded(node, "isolate")


async def stop_nginx(node: Node) -> str:
    """nginx stopped while BIRD keeps announcing."""
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
    """Undo every fault: lift isolation, thaw or restart BIRD, start nginx. Returns what was
    undone (empty when the node was healthy; a drill's BFD markers are the caller's)."""
    lay = node.layout
    undone = []
    res = await node.run("nft", "delete", "table", "inet", ISOLATE_TABLE, check=False)
    if res.exit_status == 0:
        undone.append("isolate")
    pid = await _main_pid(node, lay.bird_unit)
    if pid:
        frozen = await node.run(
            "grep", "-q", "^State:.*stopped", f"/proc/{pid}/status", check=False
        )
        if frozen.exit_status == 0:
            await node.systemctl("kill", "-s", "CONT", "--kill-who=main", lay.bird_unit)
            undone.append("freeze-bird")
    dropin = NO_RESTART_DROPIN.format(unit=lay.bird_unit)
    if await node.read(dropin) is not None:
        await node.run("rm", "-f", dropin)
        await node.systemctl("daemon-reload")
    if not await node.bird_running():
        await node._start_bird()
        undone.append("kill-bird")
    if not await node.nginx_running():
        await node.systemctl("start", lay.nginx_unit)
        undone.append("stop-nginx")
    # a drill's markers: the caller puts BFD back (it needs the neighbor data)
    undone += [f for f in await active_faults(node) if f in DRILL_BFD]
    await node.run("rm", "-f", f"{lay.state_dir}/faults")
    return undone
