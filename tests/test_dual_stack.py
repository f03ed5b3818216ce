"""Dual stack in the lab: the EIP announced over IPv4 and IPv6 (Metal's Local BGP shape),
both families served end to end, measured per family."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from conftest import Deployed, fetch_from_client, make_config, run_cli, status, wait_for
from ecmptui.lab.control import LabInfo
from metal_spec import LabApi, validate

pytestmark = pytest.mark.lab


def settled(cfg: Path, bfd: str | None = None) -> dict:
    """Status once every session of every node is Established (and, with `bfd`, each node's
    BFD reads so, e.g. "4/4 up"): a test before may have broken and restored a node, and
    each family's sessions come back on their own timers (BIRD's error wait), so "the node
    is Established" is not yet "all four are"."""
    st = wait_for(
        lambda: (
            (s := status(cfg))
            and all(p["bgp_state"] == "Established" for n in s["nodes"] for p in n["peers"])
            and (bfd is None or all(n["bfd"] == bfd for n in s["nodes"]))
            and s
        ),
        timeout=30,
    )
    assert st, f"sessions not all Established{f' with BFD {bfd}' if bfd else ''}: " + str(
        status(cfg)["nodes"]
    )
    return dict(st)


def test_each_node_has_a_session_per_router_and_family(deployed: Deployed) -> None:
    cfg, inv = deployed
    assert ipaddress.ip_address(inv["eip6"]).version == 6  # the lab's default: dual
    st = settled(cfg)
    assert st["eip6"] == inv["eip6"]
    for n in st["nodes"]:
        sessions = sorted((p["family"], p["neighbor"], p["bgp_state"]) for p in n["peers"])
        assert sessions == [
            (4, "169.254.255.1", "Established"),
            (4, "169.254.255.2", "Established"),
            (6, "fc00::e", "Established"),
            (6, "fc00::f", "Established"),
        ], n["name"]
        assert n["eip_on_lo"] is True
    names = sorted(n["name"] for n in st["nodes"])
    assert sorted(st["router"]["nodes"]) == sorted(st["router"]["nodes6"]) == names
    for core in st["router"]["cores"]:
        assert sorted(core["learned_from6"]) == names, core
    text = run_cli("--config", str(cfg), "status", check=True).stdout
    assert "core1 v6" in text and "core2 v6" in text and f"IPv6 EIP {inv['eip6']}" in text


def test_the_ipv6_eip_is_answered_by_every_node_from_the_client(
    lab: LabInfo, deployed: Deployed
) -> None:
    cfg, inv = deployed
    settled(cfg)
    seen = fetch_from_client(lab, inv["eip6"], 120)  # http.client takes the bare address
    assert sum(seen.values()) == 120 and not any(k.startswith("error") for k in seen), seen
    assert set(seen) == {"Welcome to nginx 1", "Welcome to nginx 2"}, seen


def test_check_probes_each_family(deployed: Deployed) -> None:
    cfg, inv = deployed
    settled(cfg)
    rows = json.loads(run_cli("--config", str(cfg), "check", "--json", check=True).stdout)
    services = {r["name"]: r for r in rows if r["kind"] == "service"}
    assert sorted(services) == ["service ipv4", "service ipv6"]
    v6 = services["service ipv6"]
    assert v6["ok"] and v6["url"] == f"http://[{inv['eip6']}]/" and v6["failed"] == 0
    assert sorted(v6["answers"]) == ["tnode1", "tnode2"]


def test_ipv6_api_objects_validate_against_the_spec(lab: LabInfo, deployed: Deployed) -> None:
    api, pid = LabApi(lab), lab.project_id
    ips = api.call("GET", f"projects/{pid}/ips?type=public_ipv6").json()
    assert {(i["cidr"], i["address_family"]) for i in ips["ip_addresses"]} == {(56, 6), (128, 6)}
    eip6 = next(i for i in ips["ip_addresses"] if i["cidr"] == 128)
    devices = api.call("GET", f"projects/{pid}/devices").json()["devices"]
    dev = devices[0]
    pub6 = next(a for a in dev["ip_addresses"] if a["address_family"] == 6)
    sessions = api.call("GET", f"devices/{dev['id']}/bgp/sessions").json()["bgp_sessions"]
    assert sorted(s["address_family"] for s in sessions) == ["ipv4", "ipv6"]
    sess6 = next(s for s in sessions if s["address_family"] == "ipv6")
    assert sess6["status"] == "up,up"
    neighbors = api.call("GET", f"devices/{dev['id']}/bgp/neighbors").json()
    nb6 = next(n for n in neighbors["bgp_neighbors"] if n["address_family"] == 6)
    # Metal's IPv6 record: the peers written out in full, the project's /56, not exact
    assert nb6["peer_ips"] == [
        "fc00:0000:0000:0000:0000:0000:0000:000e",
        "fc00:0000:0000:0000:0000:0000:0000:000f",
    ]
    assert (nb6["customer_as"], nb6["peer_as"], nb6["multihop"]) == (65000, 65530, True)
    assert nb6["customer_ip"] == pub6["address"]
    assert nb6["routes_in"] == [{"route": "2001:db8:ec:100::/56", "exact": False}]
    responses = [
        ("IPReservationList", ips),
        ("IPReservation", api.call("GET", f"ips/{eip6['id']}").json()),
        ("IPAssignment", api.call("GET", f"ips/{pub6['id']}").json()),
        ("BgpSession", api.call("GET", f"bgp/sessions/{sess6['id']}").json()),
        ("BgpSessionNeighbors", neighbors),
    ]
    problems = [p for model, data in responses for p in validate(model, data)]
    assert problems == []
    hrefs = set().union(*(api.hrefs(data) for _, data in responses))
    assert pub6["parent_block"]["href"] in hrefs
    assert sorted(h for h in hrefs if api.call("GET", h).status_code != 200) == []


def test_an_ipv4_deployment_is_extended_to_dual_by_a_rerun(lab: LabInfo, tmp_path: Path) -> None:
    cfg = make_config(tmp_path, tag="ecmpt-v4first", prefix="vnode")
    try:
        out = json.loads(
            run_cli(
                "--config",
                str(cfg),
                "provision",
                "--nodes",
                "1",
                "--family",
                "ipv4",
                "--json",
                check=True,
                timeout=300,
            ).stdout
        )
        assert "eip6" not in out
        (node,) = status(cfg)["nodes"]
        assert sorted(p["family"] for p in node["peers"]) == [4, 4]
        again = run_cli(
            "--config", str(cfg), "provision", "--nodes", "1", "--json", check=True, timeout=300
        )
        dual = json.loads(again.stdout)
        assert dual["eip"] == out["eip"] and ipaddress.ip_address(dual["eip6"]).version == 6
        (node,) = status(cfg)["nodes"]
        assert sorted(p["family"] for p in node["peers"]) == [4, 4, 6, 6]
        assert all(p["bgp_state"] == "Established" for p in node["peers"])
        # a rerun without --family keeps both (the deployment remembers its families)
        kept = run_cli(
            "--config", str(cfg), "provision", "--nodes", "1", "--family", "ipv4", check=True
        )
        assert "no change" in kept.stdout and " and " in kept.stdout
    finally:
        run_cli("--config", str(cfg), "deprovision", timeout=300)


@pytest.fixture(scope="module")
def drill6(deployed: Deployed) -> Any:
    """The IPv6 EIP drilled at 200 req/s: a graceful withdraw, an isolated node (with and
    without BFD) and a killed core router."""
    cfg, _ = deployed
    settled(cfg)  # a drill starts from a healthy deployment: every session up
    proc = run_cli(
        "--config", str(cfg), "drill", "--family", "ipv6", "--rate", "200",
        "--scenario", "withdraw", "--scenario", "isolate", "--scenario", "router-kill",
        "--json", timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr + proc.stdout
    rows = json.loads(proc.stdout)["scenarios"]
    assert {r["family"] for r in rows} == {6}
    return {(r["name"], r["bfd"]): r for r in rows}


def test_ipv6_withdraw_and_router_kill_fail_no_request(drill6: Any) -> None:
    for key in (("withdraw", False), ("router-kill", True), ("router-kill", False)):
        r = drill6[key]
        assert sum(r["failed"].values()) == 0 and r["recovered"], (key, r)
        assert sum(r["before"].values()) > 100 and len(r["before"]) == 2, (key, r)


def test_ipv6_isolate_moves_the_traffic_and_bfd_shortens_it(drill6: Any) -> None:
    with_bfd, without = drill6[("isolate", True)], drill6[("isolate", False)]
    for r in (with_bfd, without):
        assert r["recovered"] and list(r["after"]) == ["tnode1"], r  # the others kept serving
    # BFD detects it in a few hundred ms, the hold timer (3 s) without it (bench/docs: ms)
    assert with_bfd["convergence_ms"] < without["convergence_ms"], (with_bfd, without)


def _probe(cfg: Path, family: str) -> dict[str, int]:
    out = run_cli(
        "--config", str(cfg), "probe", "--family", family, "--rate", "100", "--duration", "1",
        "--json", check=True,
    ).stdout  # fmt: skip
    summary = json.loads(out)
    assert summary["failed"] == 0, summary
    return dict(summary["by_backend"])


def test_withdraw_and_shutdown_narrowed_to_one_family(deployed: Deployed) -> None:
    cfg, _ = deployed
    settled(cfg)
    out = run_cli(
        "--config", str(cfg), "node", "withdraw", "tnode2", "--family", "ipv6", check=True
    ).stdout
    assert "stopped announcing the IPv6 EIP" in out
    try:
        st = wait_for(lambda: (s := status(cfg))["router"]["nodes6"] == ["tnode1"] and s)
        assert st, "tnode2 still takes IPv6 traffic"
        assert sorted(st["router"]["nodes"]) == ["tnode1", "tnode2"]  # IPv4 untouched
        node2 = st["nodes"][1]
        assert node2["withdrawn"] is False and node2["withdrawn_families"] == [6]
        assert all(p["bgp_state"] == "Established" for p in node2["peers"])  # sessions stay
        assert set(_probe(cfg, "ipv6")) == {"tnode1"}
        assert set(_probe(cfg, "ipv4")) == {"tnode1", "tnode2"}
        text = run_cli("--config", str(cfg), "status", check=True).stdout
        assert "withdrawn v6" in text
        # a rerun of provision keeps it; a withdraw and announce of both ends it
        assert "no change" in run_cli("--config", str(cfg), "provision", check=True).stdout
        assert status(cfg)["router"]["nodes6"] == ["tnode1"]
    finally:
        run_cli("--config", str(cfg), "node", "announce", "tnode2", check=True)
    st = wait_for(lambda: len((s := status(cfg))["router"]["nodes6"]) == 2 and s)
    assert st and st["nodes"][1]["withdrawn_families"] == []
    out = run_cli(
        "--config", str(cfg), "node", "shutdown", "tnode2", "--family", "ipv4", check=True
    ).stdout
    assert "the IPv4 BGP session(s) shut down" in out
    try:
        st = wait_for(lambda: (s := status(cfg))["router"]["nodes"] == ["tnode1"] and s)
        assert st, "tnode2 still takes IPv4 traffic"
        states = {p["family"]: p["bgp_state"] for p in st["nodes"][1]["peers"]}
        assert states[6] == "Established" and states[4] != "Established", states
        assert sorted(st["router"]["nodes6"]) == ["tnode1", "tnode2"]
    finally:
        run_cli("--config", str(cfg), "node", "start", "tnode2", "--family", "ipv4", check=True)
    assert wait_for(lambda: sorted(status(cfg)["router"]["nodes"]) == ["tnode1", "tnode2"])


def test_family_narrowing_refuses_what_it_cannot_do(deployed: Deployed) -> None:
    cfg, _ = deployed
    proc = run_cli("--config", str(cfg), "node", "fault", "tnode2", "isolate", "--family", "ipv6")
    assert proc.returncode == 2 and "unrecognized arguments: --family" in proc.stderr
