"""FRR nodes in the lab: provisioned, read, switched and broken through the routing-daemon
port exactly as BIRD nodes are, and a hand-written FRR node driven by the static target."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import fetch_from_client, make_config, on_node, run_cli, status, wait_for
from ecmptui.lab.control import LabInfo
from ecmptui.node.failure import NodeError
from test_dual_stack import settled as dual_stack_settled
from test_health import _transitions

pytestmark = pytest.mark.lab
NO_API = {"METAL_AUTH_TOKEN": "", "PACKET_AUTH_TOKEN": ""}


@pytest.fixture(scope="module")
def frr_fleet(lab: LabInfo, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Two FRR nodes with BFD in the session's lab; deprovisioned even when a test fails."""
    cfg = make_config(
        tmp_path_factory.mktemp("frr"), tag="ecmpt-frr", prefix="frnode", extra="bfd = true"
    )
    try:
        proc = run_cli(
            "--config", str(cfg), "provision", "--nodes", "2", "--daemon", "frr", timeout=600
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.count("FRR, health check") == 2, proc.stdout
        yield cfg
    finally:
        run_cli("--config", str(cfg), "deprovision", timeout=120)


def settled(cfg: Path) -> dict:
    """Every session Established, and BFD up on all four of each node."""
    return dual_stack_settled(cfg, bfd="4/4 up")


def test_frr_nodes_have_every_session_and_serve_the_eip(lab: LabInfo, frr_fleet: Path) -> None:
    st = settled(frr_fleet)
    for n in st["nodes"]:
        assert n["daemon"] == "frr", n
        sessions = sorted((p["family"], p["protocol"], p["routes_exported"]) for p in n["peers"])
        assert sessions == [
            (4, "169.254.255.1", 1),
            (4, "169.254.255.2", 1),
            (6, "fc00::e", 1),
            (6, "fc00::f", 1),
        ], n["name"]
    for eip in (st["eip"], st["eip6"]):
        seen = fetch_from_client(lab, eip, 60)
        assert set(seen) == {"Welcome to nginx 1", "Welcome to nginx 2"}, (eip, seen)
    text = run_cli("--config", str(frr_fleet), "status", check=True).stdout
    rows = [ln for ln in text.splitlines() if ln.strip().startswith("frnode") and " FRR " in ln]
    assert len(rows) == 2, text  # the node table names the daemon (the grid does not)
    checks = json.loads(run_cli("--config", str(frr_fleet), "check", "--json").stdout)
    assert [c["daemon"] for c in checks if c["kind"] == "node"] == ["frr", "frr"]
    assert all(c["ok"] for c in checks), checks


def test_the_config_is_frrs_own_and_a_rerun_changes_nothing(frr_fleet: Path) -> None:
    async def look(node: Any) -> Any:
        conf = await node.read("/etc/frr/frr.conf")
        running = await node.run("vtysh", "-c", "show running-config")
        bird = await node.run("systemctl", "is-active", "bird", check=False)
        return conf, str(running.stdout), str(bird.stdout).strip()

    conf, running, bird = on_node(frr_fleet, "frnode1", look)
    assert "neighbor metal bfd profile ecmptui" in conf and "receive-interval 100" in conf
    assert " neighbor metal bfd\n" in running and "network 203.0.113." in running
    assert bird != "active"  # one daemon holds the sessions
    rerun = run_cli("--config", str(frr_fleet), "provision", check=True).stdout
    assert "0 changed, 2 unchanged" in rerun


def test_bfd_off_is_off_in_the_running_config(frr_fleet: Path) -> None:
    """Regression: one frr-reload pass removed `bfd` then `bfd profile` from the neighbors,
    which turned BFD on again with FRR's default timers; "BFD off" was not off."""

    async def running(node: Any) -> str:
        return str((await node.run("vtysh", "-c", "show running-config")).stdout)

    settled(frr_fleet)
    try:
        run_cli("--config", str(frr_fleet), "provision", "--no-bfd", check=True)
        text = on_node(frr_fleet, "frnode1", running)
        assert " bfd" not in text and "no ip forwarding" in text, text
        assert all(n["bfd"] is None for n in status(frr_fleet)["nodes"])
    finally:
        run_cli("--config", str(frr_fleet), "provision", "--bfd", check=True)
    assert " neighbor metal bfd profile ecmptui" in on_node(frr_fleet, "frnode1", running)
    settled(frr_fleet)


def test_a_config_frr_rejects_is_never_applied(frr_fleet: Path) -> None:
    async def attempt(node: Any) -> Any:
        before = await node.read("/etc/frr/frr.conf")
        bad = before.replace("timers bgp 1 3", "timers bgp 1 99999")
        with pytest.raises(NodeError, match=r"FRR rejected the new config, nothing applied: line"):
            await node.daemon.apply(node, bad)
        running = await node.run("vtysh", "-c", "show running-config")
        leftover = await node.run("ls", "/etc/frr/frr.conf.new", check=False)
        return before, await node.read("/etc/frr/frr.conf"), str(running.stdout), leftover

    before, after, running, leftover = on_node(frr_fleet, "frnode1", attempt)
    assert after == before and leftover.exit_status != 0
    assert "timers bgp 1 3" in running and "99999" not in running
    assert settled(frr_fleet)


def test_withdraw_family_withdraw_and_announce_on_frr(frr_fleet: Path) -> None:
    settled(frr_fleet)
    run_cli("--config", str(frr_fleet), "node", "withdraw", "frnode2", check=True)
    try:
        st = wait_for(lambda: (s := status(frr_fleet))["router"]["nodes"] == ["frnode1"] and s)
        assert st, "frnode2's next hop is still on the router"
        n2 = st["nodes"][1]
        assert n2["withdrawn"] and n2["bgp_state"] == "Established"
        assert n2["routes_exported"] == 0 and st["router"]["nodes6"] == ["frnode1"]
    finally:
        run_cli("--config", str(frr_fleet), "node", "announce", "frnode2", check=True)
    assert wait_for(lambda: len(status(frr_fleet)["router"]["nodes"]) == 2)
    run_cli(
        "--config", str(frr_fleet), "node", "withdraw", "frnode2", "--family", "ipv6", check=True
    )
    try:
        st = wait_for(lambda: (s := status(frr_fleet))["router"]["nodes6"] == ["frnode1"] and s)
        assert st and sorted(st["router"]["nodes"]) == ["frnode1", "frnode2"]
        assert st["nodes"][1]["withdrawn_families"] == [6]
    finally:
        run_cli("--config", str(frr_fleet), "node", "announce", "frnode2", check=True)
    assert wait_for(lambda: len(status(frr_fleet)["router"]["nodes6"]) == 2)


def test_shutdown_and_start_act_on_frrs_neighbors(frr_fleet: Path) -> None:
    settled(frr_fleet)
    run_cli("--config", str(frr_fleet), "node", "shutdown", "frnode1", check=True)
    try:
        st = wait_for(lambda: (s := status(frr_fleet))["router"]["nodes"] == ["frnode2"] and s)
        assert st and {p["bgp_state"] for p in st["nodes"][0]["peers"]} == {"Idle (Admin)"}
    finally:
        run_cli("--config", str(frr_fleet), "node", "start", "frnode1", check=True)
    settled(frr_fleet)


def test_the_health_check_withdraws_an_frr_node_whose_nginx_stopped(frr_fleet: Path) -> None:
    settled(frr_fleet)
    started = time.time()
    run_cli("--config", str(frr_fleet), "node", "fault", "frnode1", "stop-nginx", check=True)
    try:
        st = wait_for(lambda: (s := status(frr_fleet))["router"]["nodes"] == ["frnode2"] and s)
        assert st, "the health check did not withdraw frnode1"
        assert st["nodes"][0]["health"]["state"] == "down"
        assert st["nodes"][0]["routes_exported"] == 0  # withdrawn in bgpd, not only by the router
        log = on_node(frr_fleet, "frnode1", lambda n: n.read("/var/lib/ecmptui/health.log"))
        down = next((t for t, what in _transitions(log, started) if what == "DOWN"), None)
        assert down is not None and down - started < 1.0 + 1.0, log  # ≤ 1 s after stop, + CLI
        assert "withdraw failed" not in log
    finally:
        run_cli("--config", str(frr_fleet), "node", "restore", "frnode1", check=True)
    assert wait_for(lambda: len(status(frr_fleet)["router"]["nodes"]) == 2, timeout=15)


@pytest.mark.parametrize("fault", ["kill-bird", "freeze-bird"])
def test_a_kill_or_freeze_breaks_bgpd_and_bfdd_until_restore(frr_fleet: Path, fault: str) -> None:
    settled(frr_fleet)
    run_cli("--config", str(frr_fleet), "node", "fault", "frnode2", fault, check=True)
    try:
        st = wait_for(
            lambda: (s := status(frr_fleet))["router"]["nodes"] == ["frnode1"] and s, timeout=15
        )
        assert st, f"the routers still forward to frnode2 after {fault}"
        n2 = st["nodes"][1]
        # a frozen bgpd hangs vtysh: the node is unresponsive, as a frozen BIRD makes it
        want = "not running" if fault == "kill-bird" else "unresponsive"
        assert n2["bgp_state"] == want, n2
        assert n2["faults"] == ([fault] if fault == "kill-bird" else [])
        time.sleep(3)  # watchfrr would have restarted bgpd by now: it is held
        assert status(frr_fleet)["nodes"][1]["bgp_state"] == want
    finally:
        out = run_cli("--config", str(frr_fleet), "node", "restore", "frnode2", check=True).stdout
    assert f"restored ({fault})" in out
    settled(frr_fleet)


HAND_WRITTEN = """\
! written by hand: no peer-groups, the EIP announced through a route-map
frr defaults traditional
hostname {name}
service integrated-vtysh-config
ip route 169.254.255.1/32 {gw}
ip route 169.254.255.2/32 {gw}
ip prefix-list ANYCAST seq 5 permit {eip}/32
route-map ANYCAST-OUT permit 10
 match ip address prefix-list ANYCAST
exit
route-map TAG-IT permit 10
 set community 65000:100
exit
route-map NOTHING-IN deny 10
exit
router bgp 65000
 bgp router-id {addr}
 no bgp default ipv4-unicast
 timers bgp 1 3
 neighbor 169.254.255.1 remote-as 65530
 neighbor 169.254.255.1 ebgp-multihop 3
 neighbor 169.254.255.1 update-source {addr}
 neighbor 169.254.255.2 remote-as 65530
 neighbor 169.254.255.2 ebgp-multihop 3
 neighbor 169.254.255.2 update-source {addr}
 address-family ipv4 unicast
  network {eip}/32 route-map TAG-IT
  neighbor 169.254.255.1 activate
  neighbor 169.254.255.1 route-map NOTHING-IN in
  neighbor 169.254.255.1 route-map ANYCAST-OUT out
  neighbor 169.254.255.2 activate
  neighbor 169.254.255.2 route-map NOTHING-IN in
  neighbor 169.254.255.2 route-map ANYCAST-OUT out
 exit-address-family
exit
"""


def test_static_target_drives_a_hand_written_frr_node(frr_fleet: Path, tmp_path: Path) -> None:
    """frnode2 gets an FRR config ecmptui did not write (IPv4 only, its own names and a
    route-map on the network); the static target finds FRR and the announcement itself."""
    st = settled(frr_fleet)
    eip = st["eip"]
    n2 = st["nodes"][1]

    async def hand_write(node: Any) -> None:
        res = await node.run("ip", "-4", "-o", "addr", "show", "dev", "eth0")
        own = str(res.stdout).split()[3].split("/")[0]
        gw = own.rsplit(".", 1)[0] + ".1"
        text = HAND_WRITTEN.format(name=node.name, eip=eip, gw=gw, addr=own)
        await node.write("/etc/frr/frr.conf", text, "0640", dir_group=True)
        await node.run("rm", "-f", node.layout.daemon_file)
        await node.systemctl("restart", "frr")

    on_node(frr_fleet, n2["name"], hand_write)
    out = tmp_path / "static.toml"
    run_cli("--config", str(frr_fleet), "inventory", "export", "--output", str(out), check=True)
    text = out.read_text()
    assert text.count('daemon = "frr"') == 2, text  # export writes what each node runs
    # as an operator's own file would be: no daemon named, IPv4 only
    text = text.replace('daemon = "frr"\n', "").replace("read_only = true", "read_only = false")
    text = re.sub(r"eips = \[.*\]", f'eips = ["{eip}"]', text)
    out.write_text(text)

    def cli(*args: str, check: bool = True) -> Any:
        return run_cli("--config", str(out), *args, env=NO_API, check=check)

    def hand_node() -> dict:
        return json.loads(cli("status", "--json").stdout)["nodes"][1]

    node = wait_for(
        lambda: (
            (n := hand_node())["bgp_state"] == "Established" and n["routes_exported"] == 2 and n
        ),
        timeout=30,
    )
    assert node and node["daemon"] == "frr", hand_node()
    cli("node", "withdraw", n2["name"])
    try:
        assert wait_for(lambda: hand_node()["routes_exported"] == 0)
        assert hand_node()["withdrawn"] is True
        conf = on_node(frr_fleet, n2["name"], lambda n: n.read("/etc/frr/frr.conf"))
        assert f"! withdrawn by the operator: network {eip}/32 route-map TAG-IT" in conf
        summary = json.loads(cli("probe", "--json", "--rate", "100", "--duration", "1").stdout)
        assert summary["failed"] == 0 and set(summary["by_backend"]) == {"frnode1"}
    finally:
        cli("node", "announce", n2["name"])
    assert wait_for(lambda: hand_node()["routes_exported"] == 2)
    checks = json.loads(cli("check", "--json", check=False).stdout)
    assert [(c["name"], c["ok"], c.get("daemon")) for c in checks if c["kind"] == "node"] == [
        ("frnode1", True, "frr"),
        (n2["name"], True, "frr"),
    ]
    # back to ecmptui's own config: a rerun of provision replaces the hand-written one
    run_cli("--config", str(frr_fleet), "provision", check=True)
    settled(frr_fleet)


def test_a_rerun_with_the_other_daemon_switches_a_node_cleanly(
    lab: LabInfo, frr_fleet: Path
) -> None:
    settled(frr_fleet)
    out = run_cli(
        "--config", str(frr_fleet), "provision", "--daemon", "frr,bird", check=True
    ).stdout
    assert "frnode2: FRR stopped, BIRD" in out and "frnode1: no change" in out, out
    st = settled(frr_fleet)
    assert [n["daemon"] for n in st["nodes"]] == ["frr", "bird"]
    assert [p["protocol"] for p in st["nodes"][1]["peers"]][:2] == ["peer1", "peer2"]

    async def units(node: Any) -> Any:
        frr_unit = await node.run("systemctl", "is-enabled", "frr", check=False)
        marker = await node.read(node.layout.daemon_file)
        return str(frr_unit.stdout).strip(), marker

    assert on_node(frr_fleet, "frnode2", units) == ("disabled", "bird\n")
    seen = fetch_from_client(lab, st["eip"], 60)
    assert set(seen) == {"Welcome to nginx 1", "Welcome to nginx 2"}, seen
