"""What the CLI and the dashboard both print, written once (no I/O, quick to import).

Markup is Rich's (`[green]...[/]`), which both the CLI's console and Textual render.
"""

from __future__ import annotations

import time

from ecmptui.deployment.status import (
    DeploymentStatus,
    EventKind,
    HealthStatus,
    NodeStatus,
    RouterStatus,
    StatusEvent,
)
from ecmptui.jsonish import JsonObject


def stamp(t: float) -> str:
    """HH:MM:SS.mmm of a wall-clock time."""
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t % 1 * 1000):03d}"


# The node table: (key, heading), in order, for `status` and the BGP screen.
NODE_COLUMNS = [
    ("node", "node"),
    ("bird", "BIRD"),
    ("since", "since"),
    ("exported", "exp"),
    ("hold", "hold"),
    ("api", "API"),
    ("eip", "EIP"),
    ("health", "health"),
    ("error", "last error"),
]


def health_label(h: HealthStatus | None) -> str:
    """A node's health check in one word: up, down, stopped, not running, or "-" (none)."""
    return "-" if h is None else h.label


def node_cells(n: NodeStatus) -> dict[str, str]:
    """One node's row, by column key."""
    return {
        "node": n.name,
        "bird": bird_cell(n),
        "since": n.since.split(" ")[-1].split(".")[0],  # the time is enough on a dashboard
        "exported": str(n.routes_exported),
        "hold": (n.hold_timer or "-").split("/")[-1],
        "api": n.api_status,
        "eip": eip_cell(n),
        "health": health_label(n.health),
        "error": "; ".join(x for x in (faults_text(n), n.last_error or n.error or "") if x),
    }


# what a node's fault file may hold beside the faults themselves (a drill's changes)
FAULT_LABELS = {
    "drill-bfd-on": "BFD turned on by a drill",
    "drill-bfd-off": "BFD turned off by a drill",
}


def faults_text(n: NodeStatus) -> str:
    """The faults a node carries and how to undo them ("" when none)."""
    if not n.faults:
        return ""
    what = ", ".join(FAULT_LABELS.get(f, f) for f in n.faults)
    return f"[red]faults: {what}[/] (undo: ecmptui node restore {n.name})"


def bird_cell(n: NodeStatus) -> str:
    """The node's BGP state; with several routers, how many it is Established with (one
    router down is not the node down)."""
    if n.established and n.peers_up < len(n.peers):
        return f"[yellow]Established {n.peers_up}/{len(n.peers)}[/]"
    colour = "green" if n.established else "red"
    return f"[{colour}]{n.bgp_state}[/]"


def _partial(n: NodeStatus) -> str:
    return f" {n.announcing_to}/{len(n.peers)}" if n.announcing_to < len(n.peers) else ""


def eip_cell(n: NodeStatus) -> str:
    """Whether the node announces the EIP, as far as anyone can tell right now: to how many
    of its routers when not to all; not announced only when no router has its route."""
    if n.withdrawn:
        return "[yellow]withdrawn[/]"
    if not n.answering:
        return "unknown"
    if not n.announced:
        return "[red]not announced[/]"
    return f"[yellow]announced{_partial(n)}[/]" if _partial(n) else "announced"


def traffic_state(n: NodeStatus) -> str:
    """A node's part in the traffic, in a word or two: announced (to how many routers when
    not to all), withdrawn, or what keeps it from announcing."""
    if not n.answering:
        return f"[bold red]{n.bgp_state}[/]"
    if n.withdrawn:
        return "[yellow]withdrawn[/]"
    if n.announced:
        return f"[yellow]announced{_partial(n)}[/]" if _partial(n) else "[green]announced[/]"
    if n.established:
        return "[red]not announced[/]"
    return f"[red]{n.bgp_state}[/]"


def router_line(eip: str | None, router: RouterStatus | None) -> str:
    """The core router's next hops for the EIP, or why there are none to show."""
    if router is None:
        return f"EIP {eip or '-'}  (no router view off the lab)"
    pairs = ", ".join(
        f"{h} ({n}" + (f", {router.buckets[n]} buckets" if n in router.buckets else "") + ")"
        for h, n in zip(router.nexthops, router.nodes, strict=True)
    )
    mode = f" ({router.mode} ECMP)" if router.mode != "hash" else ""
    agent = f"   [red]{router.agent}[/]" if router.agent not in (None, "ok") else ""
    return f"EIP [b]{eip or '-'}   [/]fabric next hops{mode}: {pairs or '[red]none[/]'}{agent}"


def core_lines(st: DeploymentStatus) -> list[str]:
    """Each core router's view: its BIRD, and which nodes it learned the EIP from."""
    if st.router is None:
        return []
    out = []
    for c in st.router.cores:
        colour = "green" if c.bird == "running" else "red"
        learned = ", ".join(c.learned_from) or "[red]nobody[/]"
        out.append(
            f"  {c.name} ({c.bgp_address}): BIRD [{colour}]{c.bird}[/], EIP learned from {learned}"
        )
    return out


def grid_cells(n: NodeStatus, st: DeploymentStatus) -> dict[str, str]:
    """A node's session to each core router (by router name), for the node x router grid."""
    by_address = {p.neighbor: p for p in n.peers}
    out = {}
    for c in st.router.cores if st.router else []:
        p = by_address.get(c.bgp_address)
        if p is None:
            out[c.name] = "-"
            continue
        colour = "green" if p.bgp_state == "Established" else "red"
        out[c.name] = f"[{colour}]{p.bgp_state}[/]" + (
            f" ({p.last_error})" if p.last_error and p.bgp_state != "Established" else ""
        )
    return out


def event_line(ev: StatusEvent) -> str:
    """A status change as one log line (without its time stamp)."""
    if ev.kind is EventKind.NODE:
        return f"{ev.node}: BIRD {ev.new}"
    if ev.kind is EventKind.BGP:
        return (
            f"{ev.node}"
            + (f" ↔ {ev.peer}" if ev.peer else "")
            + f": BIRD {ev.old} → {ev.new}"
            + (f" ({ev.why})" if ev.why else "")
        )
    if ev.kind is EventKind.EIP:
        return f"{ev.node}: EIP {ev.new}"
    if ev.kind is EventKind.API:
        return f"{ev.node}: API session {ev.old} → {ev.new}"
    if ev.kind is EventKind.HEALTH:
        return f"{ev.node}: health {ev.old or '-'} → {ev.new}"
    return f"fabric next hops: {ev.new}"


def check_line(r: JsonObject) -> str:
    """One row of `check` (the CLI and the Provision screen): a node, or the service end
    to end (its row has kind "service" and its own line)."""
    if r.get("kind") == "service":
        where = f" from {r['netns']}" if r.get("netns") else ""
        if r["ok"]:
            return (
                f"{r['url']}{where}: {r['requests'] - r['failed']}/{r['requests']} "
                f"answered (by {', '.join(r['answers']) or 'nobody'})"
            )
        return "; ".join(r["problems"])
    if r["ok"]:
        return "BIRD running, " + r["sessions"] + ", EIP on lo, nginx answering"
    return "; ".join(r["problems"])
