"""Provisioning against the real lab: the guide's steps, nginx answering, BIRD announcing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from conftest import (
    Deployed,
    api_deployment,
    fetch_from_client,
    make_config,
    on_node,
    run_cli,
    status,
    wait_for,
)
from ecmptui.lab.control import LabInfo
from ecmptui.lab.instance import LabInstance
from ecmptui.node.server import HostKeyPolicy, NodeError

pytestmark = pytest.mark.lab


def test_inventory_shape(deployed: Deployed) -> None:
    _, inv = deployed
    assert inv["eip"].startswith("203.0.113.")
    assert [n["name"] for n in inv["nodes"]] == ["tnode1", "tnode2"]
    for n in inv["nodes"]:
        assert {"name", "device_id", "mgmt_address", "peers"} <= set(n)
        assert n["peers"] and n["mgmt_address"].startswith("198.18.")


def test_both_nginx_answer_new_connections(lab: LabInfo, deployed: Deployed) -> None:
    _, inv = deployed
    seen = fetch_from_client(lab, inv["eip"], 200)
    assert set(seen) == {"Welcome to nginx 1", "Welcome to nginx 2"}, seen
    assert sum(seen.values()) == 200


def test_status_shows_established_exports_and_router_nexthops(deployed: Deployed) -> None:
    cfg, inv = deployed
    st = status(cfg)
    assert st["eip"] == inv["eip"] and st["target"] == "lab"
    assert [n["bgp_state"] for n in st["nodes"]] == ["Established", "Established"]
    # to both core routers in both families (the lab's default: dual)
    assert [n["routes_exported"] for n in st["nodes"]] == [4, 4]
    assert [n["api_status"] for n in st["nodes"]] == ["up,up", "up,up"]  # a session per family
    assert all(n["eip_on_lo"] for n in st["nodes"])
    assert sorted(st["router"]["nodes"]) == sorted(st["router"]["nodes6"]) == ["tnode1", "tnode2"]
    assert len(st["router"]["nexthops"]) == len(st["router"]["nexthops6"]) == 2


def test_withdraw_keeps_session_and_announce_restores(deployed: Deployed) -> None:
    cfg, _ = deployed
    out = run_cli("--config", str(cfg), "node", "withdraw", "tnode2", check=True).stdout
    assert "stopped announcing" in out
    try:
        st = wait_for(lambda: (s := status(cfg))["router"]["nodes"] == ["tnode1"] and s)
        assert st, "tnode2's next hop is still on the router"
        node2 = st["nodes"][1]
        assert node2["bgp_state"] == "Established" and node2["routes_exported"] == 0
        assert node2["withdrawn"] is True
        # a rerun of provision keeps the operator's withdrawal
        rerun = run_cli("--config", str(cfg), "provision", check=True).stdout
        assert "no change" in rerun
        assert status(cfg)["router"]["nodes"] == ["tnode1"]
    finally:
        run_cli("--config", str(cfg), "node", "announce", "2", check=True)
    assert wait_for(lambda: sorted(status(cfg)["router"]["nodes"]) == ["tnode1", "tnode2"])


def test_shutdown_takes_session_down_and_start_restores(deployed: Deployed) -> None:
    cfg, _ = deployed
    run_cli("--config", str(cfg), "node", "shutdown", "node1", check=True)
    try:
        st = wait_for(lambda: (s := status(cfg))["router"]["nodes"] == ["tnode2"] and s)
        assert st and st["nodes"][0]["bgp_state"] != "Established"
    finally:
        run_cli("--config", str(cfg), "node", "start", "node1", check=True)
    st = wait_for(
        lambda: (
            (s := status(cfg))["nodes"][0]["bgp_state"] == "Established"
            and len(s["router"]["nodes"]) == 2
            and s
        ),
        timeout=15,
    )
    assert st


def test_rerun_reports_no_change(deployed: Deployed) -> None:
    cfg, _ = deployed
    proc = run_cli("--config", str(cfg), "provision", check=True)
    assert "no change" in proc.stdout
    assert "created tnode" not in proc.stdout and "0 changed, 2 unchanged" in proc.stdout
    assert "already registered" in proc.stdout and "already reserved" in proc.stdout


def test_broken_bird_config_is_refused_and_node_keeps_announcing(deployed: Deployed) -> None:
    cfg, inv = deployed

    async def attempt(node: Any) -> Any:
        before = await node.read(node.layout.bird_conf)
        with pytest.raises(NodeError, match="BIRD rejected the new config, nothing applied"):
            await node.daemon.apply(node, before + "\nprotocol bgp { nonsense here; }\n")
        return (
            before,
            await node.read(node.layout.bird_conf),
            await node.run("ls", node.layout.bird_conf + ".new", check=False),
        )

    before, after, leftover = on_node(cfg, "tnode1", attempt)
    assert after == before and leftover.exit_status != 0
    assert sorted(status(cfg)["router"]["nodes"]) == ["tnode1", "tnode2"]


def test_first_host_key_is_pinned_and_a_change_refused(deployed: Deployed, tmp_path: Path) -> None:
    cfg, _ = deployed
    d = api_deployment(cfg)
    rec = d.inventory().node("tnode1")
    pinned = tmp_path / "known_hosts"
    d.host_key_policy = lambda: HostKeyPolicy("pin", pinned)  # type: ignore[method-assign]

    async def login() -> Any:
        async with d.node(rec) as node:
            return (await node.run("hostname")).exit_status

    assert asyncio.run(login()) == 0
    [line] = pinned.read_text().splitlines()
    assert line.startswith(rec.mgmt_address + " ssh-ed25519 ")
    assert asyncio.run(login()) == 0  # same key: accepted
    import asyncssh

    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    pinned.write_text(f"{rec.mgmt_address} {other}")
    with pytest.raises(NodeError, match="host key does not match the one recorded"):
        asyncio.run(login())


def test_four_nodes_then_deprovision(lab: LabInfo, tmp_path: Path) -> None:
    cfg = make_config(tmp_path, tag="ecmpt-four", prefix="four")
    proc = run_cli(
        "--config", str(cfg), "provision", "--nodes", "4", "--bfd", "--no-health", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    inv = json.loads(proc.stdout)
    try:
        assert len(inv["nodes"]) == 4
        seen = fetch_from_client(lab, inv["eip"], 200)
        assert set(seen) == {f"Welcome to nginx {i}" for i in range(1, 5)}, seen
        st = status(cfg)
        assert [n["bgp_state"] for n in st["nodes"]] == ["Established"] * 4
        assert len(st["router"]["nexthops"]) == 4
        assert all(n["health"] is None for n in st["nodes"])  # --no-health
        assert (
            "no change"
            in run_cli(
                "--config",
                str(cfg),
                "provision",
                "--nodes",
                "4",
                "--bfd",
                "--no-health",
                check=True,
            ).stdout
        )
    finally:
        out = run_cli("--config", str(cfg), "deprovision", check=True).stdout
    assert "4 deleted" in out and f"{inv['eip']}, {inv['eip6']} released" in out
    st = status(cfg)
    assert st["nodes"] == [] and st["eip"] is None


@pytest.mark.parametrize("kind", ["bad-token", "unknown-project", "unreachable"])
def test_api_failures_are_one_line_and_change_nothing(
    lab: LabInfo, tmp_path: Path, kind: Any
) -> None:
    endpoint = "127.0.0.1:1" if kind == "unreachable" else lab.endpoint
    project = (
        "00000000-dead-beef-0000-000000000000" if kind == "unknown-project" else lab.project_id
    )
    token = "wrong-token" if kind == "bad-token" else lab.token()
    path = tmp_path / "metal.toml"
    path.write_text(
        f'target = "metal"\n[metal]\nendpoint = "{endpoint}"\n'
        f'project_id = "{project}"\nca_file = "{lab.ca_file}"\n'
        f'[provision]\ntag = "ecmpt-fail"\nhostname_prefix = "fail"\n'
        f'[ssh]\nkey = "{tmp_path}/id"\nknown_hosts = "{tmp_path}/kh"\n'
    )
    before = json.loads(run_cli("--lab", lab.name, "lab", "status", "--json").stdout)
    proc = run_cli("--config", str(path), "provision", env={"METAL_AUTH_TOKEN": token})
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    expected = {
        "bad-token": "401 Invalid authentication token (check the API token)",
        "unknown-project": "404 Not found (check the project id)",
        "unreachable": "cannot reach the Metal API at 127.0.0.1:1",
    }[kind]
    assert expected in line and token not in line
    after = json.loads(run_cli("--lab", lab.name, "lab", "status", "--json").stdout)
    assert after["devices"] == before["devices"] and after["eips"] == before["eips"]


def test_two_provisions_at_once_make_one_deployment(lab: LabInfo, tmp_path: Path) -> None:
    """One writer per deployment: the second is refused at once, or waits with --wait."""
    import subprocess
    import sys

    cfg = make_config(tmp_path, tag="ecmpt-race", prefix="race")

    def start(*extra: str) -> subprocess.Popen:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ecmptui",
                "--config",
                str(cfg),
                *extra,
                "provision",
                "--nodes",
                "2",
            ],
            cwd="/",
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    try:
        procs = [start(), start()]
        outs = [(p.wait(timeout=120), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
        codes = sorted(code for code, _ in outs)
        assert codes == [0, 2], outs
        refusal = next(err for code, err in outs if code == 2).strip()
        assert refusal.startswith("ecmptui: error: busy: provision by PID ")
        assert len(refusal.splitlines()) == 1
        d = api_deployment(cfg)
        assert sorted(r.name for r in d.inventory().nodes) == ["race1", "race2"]
        assert len(d.client.devices("ecmpt-race")) == 2
        waited = [start("--wait", "120"), start("--wait", "120")]
        assert [p.wait(timeout=180) for p in waited] == [0, 0]
        assert len(d.client.devices("ecmpt-race")) == 2
    finally:
        run_cli("--config", str(cfg), "deprovision")


def test_status_tells_the_truth_about_a_node_whose_bird_is_dead(deployed: Deployed) -> None:
    cfg, _ = deployed
    run_cli("--config", str(cfg), "node", "fault", "tnode1", "kill-bird", check=True)
    try:
        st = wait_for(
            lambda: (s := status(cfg))["nodes"][0]["bgp_state"] == "not running" and s, timeout=10
        )
        assert st, "status never noticed the dead BIRD"
        node = st["nodes"][0]
        assert node["health"] is not None and node["health"]["alive"] is True  # still known
        assert "BIRD is not running" in (node["last_error"] or "")
        text = run_cli("--config", str(cfg), "status", check=True).stdout  # a pipe, not a tty
        row = next(line for line in text.splitlines() if line.strip().startswith("tnode1"))
        assert "not running" in row and "not announced" in row
        assert "BIRD is not running" in row  # the last error column survives a pipe
        assert " announced" not in row.replace("not announced", "")
    finally:
        run_cli("--config", str(cfg), "node", "restore", "tnode1", check=True)
    assert wait_for(
        lambda: all(n["bgp_state"] == "Established" for n in status(cfg)["nodes"]), timeout=20
    )


def test_a_different_md5_is_refused_before_anything_is_created(
    deployed: Deployed, tmp_path: Path
) -> None:
    assert deployed  # the test lab's project has Local BGP enabled, without MD5
    cfg = make_config(tmp_path, tag="ecmpt-md5", prefix="md5n", extra='md5 = "s3cretPW"')
    proc = run_cli("--config", str(cfg), "provision", "--nodes", "1")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "ecmptui: error: Local BGP is enabled with no MD5 password, not the configured one: "
        "the API cannot change it; use the password BGP was enabled with"
    )
    assert "s3cretPW" not in proc.stderr + proc.stdout
    d = api_deployment(cfg)
    assert d.client.devices("ecmpt-md5") == [] and d.client.ips("ecmpt-md5") == []


def test_a_device_that_never_comes_up_is_named_and_replaced_by_the_next_provision(
    lab: LabInfo, lab_instance: LabInstance, tmp_path: Path
) -> None:
    """Regression (issue 22): a failed device blocked every rerun with no reason, only the
    first one named, and the Provision screen said the servers were fine."""
    cfg = make_config(tmp_path, tag="ecmpt-fail", prefix="bnode")
    faults = lab_instance.boot_faults_file
    faults.write_text("bnode2\n")
    try:
        proc = run_cli("--config", str(cfg), "provision", "--nodes", "2", timeout=300)
        assert proc.returncode != 0
        err = proc.stderr.strip()
        assert (
            "bnode2: failed again (its machine did not come up (boot failure injected" in err
            and len(err.splitlines()) == 1
        ), err
        assert "replaced bnode2 (failed: its machine did not come up" not in proc.stdout
        st = status(cfg)
        by_name = {n["name"]: n for n in st["nodes"]}
        assert by_name["bnode2"]["device_state"] == "failed"
        assert "boot failure injected" in by_name["bnode2"]["device_error"]
        assert by_name["bnode1"]["device_state"] == "active"
        rows = json.loads(run_cli("--config", str(cfg), "check", "--json").stdout)
        bad = next(r for r in rows if r["name"] == "bnode2")
        assert bad["problems"][0].startswith("device failed: its machine did not come up")
        first = by_name["bnode1"]["device_id"]
        faults.unlink()
        again = run_cli("--config", str(cfg), "provision", "--nodes", "2", timeout=300)
        assert again.returncode == 0, again.stderr
        assert "replaced bnode2 (failed: its machine did not come up" in again.stdout
        st = status(cfg)
        assert {n["name"]: n["device_id"] for n in st["nodes"]}["bnode1"] == first
        assert [n["device_state"] for n in st["nodes"]] == ["active", "active"]
    finally:
        faults.unlink(missing_ok=True)
        run_cli("--config", str(cfg), "deprovision", timeout=120)
