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
    StatusEvent,
)
from ecmptui.jsonish import JsonObject
from ecmptui.node.daemon_names import DAEMON_LABELS


def stamp(t: float) -> str:
    """HH:MM:SS.mmm of a wall-clock time."""
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t % 1 * 1000):03d}"


# The node table: (key, heading), in order, for `status` and the BGP screen.
NODE_COLUMNS = [
    ("node", "node"),
    ("daemon", "daemon"),
    ("bgp", "BGP"),
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
        "daemon": daemon_label(n),
        "bgp": bgp_cell(n),
        "since": n.since.split(" ")[-1].split(".")[0],  # the time is enough on a dashboard
        "exported": str(n.routes_exported),
        "hold": (n.hold_timer or "-").split("/")[-1],
        "api": n.api_status,
        "eip": eip_cell(n),
        "health": health_label(n.health),
        "error": "; ".join(x for x in (faults_text(n), n.last_error or n.error or "") if x),
    }


def daemon_label(n: NodeStatus) -> str:
    """The routing daemon a node runs, as people write it: BIRD, FRR ("-": not known)."""
    return DAEMON_LABELS.get(n.daemon or "", n.daemon or "-")


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


def bgp_cell(n: NodeStatus) -> str:
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
    if n.withdrawn_families:
        return _withdrawn_alone(n)
    if not n.announced:
        return "[red]not announced[/]"
    return f"[yellow]announced{_partial(n)}[/]" if _partial(n) else "announced"


def _withdrawn_alone(n: NodeStatus) -> str:
    """The families the operator withdrew alone: withdrawn v6."""
    return "[yellow]withdrawn " + " ".join(f"v{f}" for f in n.withdrawn_families) + "[/]"


def traffic_state(n: NodeStatus) -> str:
    """A node's part in the traffic, in a word or two: announced (to how many routers when
    not to all), withdrawn, or what keeps it from announcing."""
    if not n.answering:
        return f"[bold red]{n.bgp_state}[/]"
    if n.withdrawn:
        return "[yellow]withdrawn[/]"
    if n.withdrawn_families:
        return _withdrawn_alone(n)
    if n.announced:
        return f"[yellow]announced{_partial(n)}[/]" if _partial(n) else "[green]announced[/]"
    if n.established:
        return "[red]not announced[/]"
    return f"[red]{n.bgp_state}[/]"


def _family_name(family: int, st: DeploymentStatus) -> str:
    """How the EIP of `family` is named: "EIP" alone, "IPv6 EIP" beside another family."""
    return "EIP" if len(st.eips) < 2 else f"IPv{family} EIP"


def router_lines(st: DeploymentStatus) -> list[str]:
    """The fabric's next hops for the EIP of each family, or why there are none to show."""
    router = st.router
    if router is None:
        eips = ", ".join(st.eips.values()) or "-"
        return [f"EIP {eips}  (no router view off the lab)"]
    mode = f" ({router.mode} ECMP)" if router.mode != "hash" else ""
    agent = f"   [red]{router.agent}[/]" if router.agent not in (None, "ok") else ""
    out = []
    for family, eip in (st.eips or {4: "-"}).items():
        hops = router.nexthops_for(family)
        buckets = router.buckets_for(family)
        pairs = ", ".join(
            f"{h} ({n}" + (f", {buckets[n]} buckets" if n in buckets else "") + ")"
            for h, n in zip(hops, router.nodes_for(family), strict=True)
        )
        out.append(
            f"{_family_name(family, st)} [b]{eip}   [/]fabric next hops{mode}: "
            f"{pairs or '[red]none[/]'}{agent}"
        )
        agent = ""  # said once
    return out


def core_lines(st: DeploymentStatus) -> list[str]:
    """Each core router's view: its BIRD, and which nodes it learned each EIP from."""
    if st.router is None:
        return []
    out = []
    for c in st.router.cores:
        colour = "green" if c.bird == "running" else "red"
        learned = "; ".join(
            f"{_family_name(f, st)} learned from "
            + (", ".join(c.learned_for(f)) or "[red]nobody[/]")
            for f in (st.eips or {4: ""})
        )
        out.append(f"  {c.name} ({c.bgp_address}): BIRD [{colour}]{c.bird}[/], {learned}")
    return out


def grid_columns(st: DeploymentStatus) -> list[tuple[str, str]]:
    """The node x router (x family, on a dual stack) grid's columns: (key, label)."""
    cores = [c.name for c in st.router.cores] if st.router else []
    families = list(st.eips) or [4]
    if len(families) < 2:
        return [(c, c) for c in cores]
    return [(f"{c} v{f}", f"{c} v{f}") for c in cores for f in families]


def grid_cells(n: NodeStatus, st: DeploymentStatus) -> dict[str, str]:
    """A node's session to each core router in each family, by `grid_columns` key."""
    by_address = {p.neighbor: p for p in n.peers}
    dual = len(st.eips) > 1
    out = {}
    for c in st.router.cores if st.router else []:
        for family in list(st.eips) or [4]:
            key = f"{c.name} v{family}" if dual else c.name
            address = c.address_for(family)
            p = by_address.get(address) if address else None
            if p is None:
                out[key] = "-"
                continue
            colour = "green" if p.bgp_state == "Established" else "red"
            # a dual stack's four columns fit 80 only with the state alone (the node's
            # last error is in its row of the node table, and in the BGP log)
            why = p.last_error and p.bgp_state != "Established" and not dual
            out[key] = f"[{colour}]{p.bgp_state}[/]" + (f" ({p.last_error})" if why else "")
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
        daemon = DAEMON_LABELS.get(r.get("daemon") or "", "the routing daemon")
        return f"{daemon} running, " + r["sessions"] + ", EIP on lo, nginx answering"
    return "; ".join(r["problems"])
