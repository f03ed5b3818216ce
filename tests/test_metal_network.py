"""The lab network in Metal's shape: two core routers reached multihop, a fabric doing ECMP,
and a router failure that loses nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import Deployed, api_deployment, on_node, run_cli, status, wait_for
from ecmptui.lab.control import LabInfo

pytestmark = pytest.mark.lab

# Metal's BgpNeighborData, as its API documentation and OpenAPI spec describe it
NEIGHBOR_FIELDS = {
    "address_family": int,
    "customer_as": int,
    "customer_ip": str,
    "md5_enabled": bool,
    "multihop": bool,
    "peer_as": int,
    "peer_ips": list,
    "routes_in": list,
    "routes_out": list,
}  # + md5_password when MD5 is on


def test_every_node_peers_multihop_with_both_routers_through_its_gateway(
    deployed: Deployed,
) -> None:
    cfg, inv = deployed
    d = api_deployment(cfg)
    for rec in d.inventory().nodes:
        nb, nb6 = d.client.neighbors(rec.device_id)  # IPv4's record, then IPv6's (dual)
        assert set(nb) == set(nb6) == set(NEIGHBOR_FIELDS)
        assert (nb6["address_family"], nb6["customer_ip"]) == (6, rec.public_ipv6)
        assert nb6["peer_ips"] == [f"fc00:0000:0000:0000:0000:0000:0000:000{x}" for x in "ef"]
        assert all(isinstance(nb[k], t) for k, t in NEIGHBOR_FIELDS.items()), nb
        assert (nb["address_family"], nb["customer_as"], nb["peer_as"]) == (4, 65000, 65530)
        assert nb["customer_ip"] == rec.private_address and nb["multihop"] is True
        assert nb["peer_ips"] == ["169.254.255.1", "169.254.255.2"]
        assert nb["routes_in"] == [{"route": f"{inv['eip']}/32", "exact": True}]
        assert nb["routes_out"] == [] and nb["md5_enabled"] is False
        assert "md5_password" not in nb  # the spec has no null for it
        sessions = d.client.sessions(rec.device_id)
        assert [(s["address_family"], s["status"]) for s in sessions] == [
            ("ipv4", "up,up"),
            ("ipv6", "up,up"),
        ]

        async def conf(node: Any) -> Any:
            return await node.read(node.layout.bird_conf)

        text = on_node(cfg, rec.name, conf)
        for peer in ("169.254.255.1", "169.254.255.2"):
            assert f"route {peer}/32 via {rec.private_gateway};" in text
        for peer in ("fc00::e", "fc00::f"):
            assert f"route {peer}/128 via {rec.gateway6};" in text
        assert "multihop 5;" in text
    for n in status(cfg)["nodes"]:
        peers = {p["neighbor"]: p for p in n["peers"]}
        assert set(peers) == {"169.254.255.1", "169.254.255.2", "fc00::e", "fc00::f"}
        assert all(
            p["bgp_state"] == "Established" and p["routes_exported"] == 1 for p in peers.values()
        )


def test_status_shows_each_routers_view_and_the_fabric(deployed: Deployed) -> None:
    cfg, _ = deployed
    st = status(cfg)
    assert sorted(st["router"]["nodes"]) == ["tnode1", "tnode2"]
    cores = {c["name"]: c for c in st["router"]["cores"]}
    assert set(cores) == {"core1", "core2"}
    for name, address, address6 in (
        ("core1", "169.254.255.1", "fc00::e"),
        ("core2", "169.254.255.2", "fc00::f"),
    ):
        assert cores[name]["bgp_address"] == address and cores[name]["bird"] == "running"
        assert cores[name]["bgp_address6"] == address6
        assert sorted(cores[name]["learned_from"]) == ["tnode1", "tnode2"]
        assert sorted(cores[name]["learned_from6"]) == ["tnode1", "tnode2"]


def test_an_isolated_router_shows_in_the_api_and_status_and_loses_nothing(
    deployed: Deployed,
) -> None:
    cfg, _ = deployed
    run_cli("--config", str(cfg), "router", "fault", "core2", "isolate", check=True)
    try:
        st = wait_for(
            lambda: (
                (s := status(cfg))
                and all(
                    p["bgp_state"] != "Established"
                    for n in s["nodes"]
                    for p in n["peers"]
                    if p["neighbor"] in ("169.254.255.2", "fc00::f")
                )
                and all(n["api_status"] == "partial,partial" for n in s["nodes"])
                and s
            ),
            timeout=15,
        )
        assert st, "sessions to the isolated router never went down"
        # one word per session (IPv4's, IPv6's): each up on one router of two
        assert [n["api_status"] for n in st["nodes"]] == ["partial,partial"] * 2
        cores = {c["name"]: c for c in st["router"]["cores"]}
        assert cores["core2"]["learned_from"] == cores["core2"]["learned_from6"] == []
        assert sorted(cores["core1"]["learned_from"]) == ["tnode1", "tnode2"]
        assert sorted(cores["core1"]["learned_from6"]) == ["tnode1", "tnode2"]
        assert sorted(st["router"]["nodes"]) == ["tnode1", "tnode2"]  # the FIB kept both
        assert sorted(st["router"]["nodes6"]) == ["tnode1", "tnode2"]
    finally:
        out = run_cli("--config", str(cfg), "router", "restore", "core2", check=True).stdout
    assert "restored (isolate)" in out
    assert wait_for(
        lambda: all(
            p["bgp_state"] == "Established" for n in status(cfg)["nodes"] for p in n["peers"]
        ),
        timeout=20,
    )


def test_a_router_down_is_not_every_node_down(deployed: Deployed) -> None:
    """Regression (issue 22): with core1's BIRD killed every node showed `Active … not
    announced`, while core2 carried all the traffic."""
    from ecmptui.deployment.status import DeploymentStatus, diff
    from ecmptui.display import event_line

    cfg, _ = deployed
    before = status(cfg)
    run_cli("--config", str(cfg), "router", "fault", "core1", "kill-bird", check=True)
    try:
        st = wait_for(
            lambda: (
                (s := status(cfg))
                and all(
                    p["bgp_state"] != "Established"
                    for n in s["nodes"]
                    for p in n["peers"]
                    if p["neighbor"] in ("169.254.255.1", "fc00::e")
                )
                and s
            ),
            timeout=15,
        )
        assert st, "sessions to the killed router never went down"
        assert [n["bgp_state"] for n in st["nodes"]] == ["Established", "Established"]
        text = run_cli("--config", str(cfg), "status", check=True).stdout
        # two sessions of four up (core2's, one per family), announced to two of four
        assert text.count("Established 2/4") == 2 and text.count("announced 2/4") == 2, text
        assert "not announced" not in text
        lines = [
            event_line(e)
            for e in diff(DeploymentStatus.from_json(before), DeploymentStatus.from_json(st))
        ]
        assert any(ln.startswith("tnode1 ↔ core1: BIRD Established → ") for ln in lines), lines
        assert not any("core2" in ln for ln in lines), lines
        check = json.loads(run_cli("--config", str(cfg), "check", "--json").stdout)
        services = [r for r in check if r["kind"] == "service"]
        assert [r["name"] for r in services] == ["service ipv4", "service ipv6"]
        assert all(r["ok"] for r in services), services
        nodes = [r for r in check if r["kind"] != "service"]
        assert all("2/4 Established" in " ".join(r["problems"]) for r in nodes), nodes
    finally:
        run_cli("--config", str(cfg), "router", "restore", "core1", check=True)
    assert wait_for(
        lambda: all(
            p["bgp_state"] == "Established" for n in status(cfg)["nodes"] for p in n["peers"]
        ),
        timeout=30,
    )


def test_router_kill_drill_fails_no_request_and_keeps_traffic_spread(deployed: Deployed) -> None:
    cfg, _ = deployed
    proc = run_cli(
        "--config",
        str(cfg),
        "drill",
        "--scenario",
        "router-kill",
        "--rate",
        "200",
        "--json",
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["scenarios"]
    assert [(r["name"], r["bfd"], r["family"]) for r in rows] == [
        ("router-kill", bfd, family) for family in (4, 6) for bfd in (True, False)
    ]  # both families by default, one after the other
    for r in rows:
        assert sum(r["failed"].values()) == 0, r
        assert set(r["after"]) == {"tnode1", "tnode2"}, r  # still spread over every node
        assert r["recovered"] is True, r
        if r["family"] == 4:
            assert r["fib_ms"] is None, r  # the IPv4 route never changed
        # IPv6: BIRD installs the same multipath route again when a core's paths go (a
        # route change the kernel reports, with the same next hops): nothing fails


def test_withdraw_reports_when_the_fib_changed(deployed: Deployed) -> None:
    cfg, _ = deployed
    proc = run_cli(
        "--config",
        str(cfg),
        "drill",
        "--scenario",
        "withdraw",
        "--rate",
        "200",
        "--json",
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["scenarios"]
    assert [r["family"] for r in rows] == [4, 6]  # each family's route, watched on its own
    for r in rows:
        assert r["fib_ms"] is not None and 0 <= r["fib_ms"] < 500, r
        assert sum(r["failed"].values()) == 0


def test_router_faults_are_refused_off_the_lab(tmp_path: Path) -> None:
    cfg = tmp_path / "metal.toml"
    cfg.write_text('target = "metal"\n[metal]\nproject_id = "p"\n')
    proc = run_cli(
        "--config", str(cfg), "router", "fault", "core1", "kill-bird", env={"METAL_AUTH_TOKEN": "x"}
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "ecmptui: error: router faults are lab-only (the lab owns its routers)"
    )


def test_router_configs_hold_the_md5_password_for_root_and_bird_only(
    lab: LabInfo, deployed: Deployed
) -> None:
    from ecmptui.lab import router
    from ecmptui.lab.instance import LabInstance

    for name in ("core1", "core2", "fabric"):
        b = (
            router.fabric_bird(LabInstance(lab.name))
            if name == "fabric"
            else router.core(LabInstance(lab.name), name)
        )
        out = b.machine.run("stat", "-c", "%a %U %G", "/etc/bird/bird.conf").stdout.split()
        assert out == ["640", "bird", "bird"], (name, out)
