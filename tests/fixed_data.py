"""Fixed data for snapshot tests and the docs' screenshots: a two-node lab, a minute of
traffic with a withdraw and an isolate in it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ecmptui.deployment.status import (
    CoreView,
    DeploymentStatus,
    HealthStatus,
    NodeStatus,
    PeerStatus,
    RouterStatus,
)
from ecmptui.deployment.steps import STEPS, StepEvent, StepState
from ecmptui.traffic.probe import Sample

NOW = 1000.0


def _peer(
    name: str, neighbor: str, state: str = "Established", error: str | None = None
) -> PeerStatus:
    return PeerStatus(
        name,
        state,
        "2026-11-26 18:32:23.101",
        neighbor,
        0,
        1 if state == "Established" else 0,
        None,
        error,
        6 if ":" in neighbor else 4,
    )


# a mixed fleet: node1 runs BIRD, node2 FRR
STATUS = DeploymentStatus(
    target="lab",
    eip="203.0.113.10",
    eip6="2001:db8:ec:1ff::10",  # a dual stack: sessions per router and family
    nodes=[
        NodeStatus(
            "ecmp-node1",
            1,
            "d1",
            "198.18.100.11",
            bgp_state="Established",
            since="2026-11-26 18:32:23.101",
            routes_exported=4,
            hold_timer="2.412/3",
            api_status="up",
            eip_on_lo=True,
            health=HealthStatus("up", since="18:32:24"),
            peers=[
                _peer("peer1", "169.254.255.1"),
                _peer("peer2", "169.254.255.2"),
                _peer("peer1_v6", "fc00::e"),
                _peer("peer2_v6", "fc00::f"),
            ],
            daemon="bird",
        ),
        NodeStatus(
            "ecmp-node2",
            2,
            "d2",
            "198.18.100.12",
            bgp_state="Active",
            since="2026-11-26 18:40:02.877",
            last_error="Hold timer expired",
            api_status="down",
            eip_on_lo=True,
            health=HealthStatus("up", since="18:32:25"),
            peers=[
                # an FRR node names its sessions by neighbor
                _peer("169.254.255.1", "169.254.255.1", "Active", "Hold timer expired"),
                _peer("169.254.255.2", "169.254.255.2", "Active", "Hold timer expired"),
                _peer("fc00::e", "fc00::e", "Active", "Hold timer expired"),
                _peer("fc00::f", "fc00::f", "Active", "Hold timer expired"),
            ],
            daemon="frr",
        ),
    ],
    router=RouterStatus(
        ["198.18.11.2"],
        ["ecmp-node1"],
        [
            CoreView(
                "core1", "169.254.255.1", "running", ["ecmp-node1"], ["ecmp-node1"], "fc00::e"
            ),
            CoreView(
                "core2", "169.254.255.2", "running", ["ecmp-node1"], ["ecmp-node1"], "fc00::f"
            ),
        ],
        nexthops6=["2001:db8:ec:100::3"],
        nodes6=["ecmp-node1"],
    ),
)


def samples() -> list[Sample]:
    """60 s at 100 req/s: both nodes; node2 withdrawn at -40 s for 10 s; isolated at -12 s."""
    out = []
    for i in range(6000):
        t = NOW - 60 + i / 100
        age = NOW - t
        if i % 2 == 0 or 30 < age <= 40:
            out.append(Sample(t, "ecmp-node1", None, 2.0 + (i % 7) * 0.3))
        elif 9.5 < age <= 12:
            out.append(Sample(t, None, "timeout", 1000.0))
        elif age <= 9.5:
            out.append(Sample(t, "ecmp-node1", None, 2.1))
        else:
            out.append(Sample(t, "ecmp-node2", None, 2.4 + (i % 5) * 0.2))
    return out


WALL = 1795718000.0  # 2026-11-26 (shown in the local time zone)


def status(**node2: Any) -> DeploymentStatus:
    """STATUS as seen at WALL: node1 answered 0.4 s ago, node2 5.2 s ago (stale)."""
    n1, n2 = STATUS.nodes
    return replace(
        STATUS,
        nodes=[replace(n1, updated=WALL - 0.4), replace(n2, updated=WALL - 5.2, **node2)],
        updated=WALL,
    )


def many_nodes(count: int = 16) -> DeploymentStatus:
    """`count` nodes with long names, all Established."""
    base = STATUS.nodes[0]
    return replace(
        STATUS,
        nodes=[
            replace(base, name=f"ecmp-node{i}", index=i, updated=WALL) for i in range(1, count + 1)
        ],
        updated=WALL,
    )


def prime(app: Any) -> None:
    """Put the fixed data into an app started with live=False."""
    app.clock = lambda: NOW
    app.wall = lambda: WALL
    app.project_label = "4f0c2a9e-lab"
    app.probe_state = "probing at 100/s"
    app.show_status(status())
    app.log_event(WALL - 20.123, "ecmp-node2: BIRD Established → Active (Hold timer expired)")
    app.log_event(WALL - 20.098, "fabric next hops: ecmp-node1")
    for s in samples():
        app.traffic.add(s)
    w = app.traffic.begin("ecmp-node2", "withdraw", t=NOW - 40)
    w.outcome, w.settled, w.convergence_ms, w.failed = "done", True, 3.1, {}
    a = app.traffic.begin("ecmp-node2", "announce", t=NOW - 30)
    a.outcome, a.settled, a.takes_node_out, a.recovery_ms = "done", True, False, 41.0
    iso = app.traffic.begin("ecmp-node2", "isolate", t=NOW - 12)
    iso.outcome, iso.settled, iso.convergence_ms = "done", True, 2496.0
    iso.failed = {"timeout": 125}
    kill = app.traffic.begin("ecmp-node2", "kill-bird", t=NOW - 3)
    kill.outcome = "running"


def update_after_first_draw(app: Any) -> None:
    """What changes while a screen is up: a result that is longer than the "…" it replaces,
    a BGP state and error longer than the ones drawn first."""
    kill = app.traffic.timeline[-1]
    kill.outcome, kill.settled, kill.convergence_ms = "done", True, 82.0
    kill.failed, kill.fib_ms = {"timeout": 9}, 3.9
    app.show_status(
        status(
            bgp_state="Connect",
            api_status="down,down",
            last_error="BGP Error: Hold timer expired (peer 169.254.255.1)",
        )
    )


def provision_events() -> list[StepEvent]:
    evs = [
        StepEvent(k, StepState.DONE, d)
        for k, d in [
            ("ssh-key", "registered as 'ecmptui'"),
            ("devices", "created ecmp-node1, ecmp-node2"),
            ("eip", "203.0.113.10 reserved"),
            ("bgp", "enabled (AS 65000)"),
            ("sessions", "2 created, 0 existing"),
        ]
    ]
    evs += [
        StepEvent("configure", StepState.DONE, "EIP on lo, nginx, BIRD", "ecmp-node1"),
        StepEvent("configure", StepState.RUNNING, "connecting", "ecmp-node2"),
        StepEvent("configure", StepState.RUNNING),
    ]
    assert {e.step for e in evs} <= {k for k, _ in STEPS}
    return evs
