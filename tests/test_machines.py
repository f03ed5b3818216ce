"""Lab servers are Debian machines and are provisioned like real servers: systemd units,
Debian's paths, packages installed when missing, and a reboot they survive by themselves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import Deployed, fetch_from_client, make_config, on_node, run_cli, status
from ecmptui import config
from ecmptui.lab.control import LabInfo
from ecmptui.lab.instance import LabInstance
from ecmptui.targets import open_deployment

pytestmark = pytest.mark.lab


def _sh(cfg: Path, name: str, script: str) -> tuple[int, str]:
    async def go(node: Any) -> Any:
        res = await node.run("sh", "-c", script, check=False)
        return res.exit_status, str(res.stdout).strip()

    return on_node(cfg, name, go)


def test_a_node_is_a_debian_machine_run_by_systemd(deployed: Deployed) -> None:
    cfg, inv = deployed
    code, out = _sh(
        cfg,
        "tnode1",
        "cat /proc/1/comm; hostname; . /etc/os-release; echo $VERSION_ID; readlink /proc/1/ns/pid",
    )
    comm, hostname, version, pid_ns = out.splitlines()
    assert (code, comm, hostname, version) == (0, "systemd", "tnode1", "12")
    assert pid_ns != Path("/proc/self/ns/pid").readlink().as_posix()  # its own PID namespace
    code, out = _sh(cfg, "tnode1", "systemctl is-active bird nginx ecmptui-health ecmptui-eip")
    assert (code, out.split()) == (0, ["active"] * 4)
    code, out = _sh(cfg, "tnode1", "systemctl is-enabled bird nginx ecmptui-health ecmptui-eip")
    assert (code, out.split()) == (0, ["enabled"] * 4)
    code, conf = _sh(cfg, "tnode1", "cat /etc/bird/bird.conf")
    assert code == 0 and f"{inv['eip']}/32" in conf
    host_conf = Path("/etc/bird/bird.conf")  # the host's own BIRD (if any) is not ours
    assert not host_conf.exists() or inv["eip"] not in host_conf.read_text()
    code, out = _sh(cfg, "tnode1", "ip -o -4 addr show dev lo")
    assert f"{inv['eip']}/32" in out


def test_files_written_in_one_node_stay_in_that_node(deployed: Deployed) -> None:
    cfg, _ = deployed
    marker = "/root/ecmptui-test-marker"
    assert _sh(cfg, "tnode1", f"echo one > {marker} && cat {marker}") == (0, "one")
    assert _sh(cfg, "tnode2", f"test -e {marker}")[0] == 1
    assert not Path(marker).exists()
    _sh(cfg, "tnode1", f"rm -f {marker}")


def test_reboot_drill_node_comes_back_by_itself(lab: LabInfo, deployed: Deployed) -> None:
    cfg, _ = deployed
    proc = run_cli(
        "--config",
        str(cfg),
        "drill",
        "--family",
        "ipv4",
        "--scenario",
        "reboot",
        "--node",
        "tnode2",
        "--rate",
        "100",
        "--json",
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(proc.stdout)["scenarios"]
    assert result["name"] == "reboot" and result["node"] == "tnode2"
    assert result["recovered"] is True, result
    assert result["recovery_ms"] is not None and result["recovery_ms"] > 200  # really went away
    assert result["requests"] > 100 and not result["notes"], result
    st = status(cfg)
    assert [n["bgp_state"] for n in st["nodes"]] == ["Established", "Established"]
    assert sorted(st["router"]["nodes"]) == ["tnode1", "tnode2"]
    seen = fetch_from_client(lab, st["eip"], 40)
    assert set(seen) == {"Welcome to nginx 1", "Welcome to nginx 2"}, seen


def test_plain_server_gets_its_daemon_and_nginx_through_the_lab_apt_proxy(
    lab: LabInfo, lab_instance: LabInstance, tmp_path_factory: pytest.TempPathFactory
) -> None:
    cfg = make_config(
        tmp_path_factory.mktemp("plain"),
        tag="ecmpt-plain",
        prefix="pnode",
        extra='operating_system = "debian_12_plain"',
    )
    try:
        proc = run_cli("--config", str(cfg), "provision", "--nodes", "1", timeout=600)
        assert proc.returncode == 0, proc.stderr
        assert "installed bird2, nginx-light" in proc.stdout
        inv = open_deployment(config.load(cfg)).inventory()
        assert inv.eip is not None
        seen = fetch_from_client(lab, inv.eip, 10)
        assert seen == {"Welcome to nginx 1": 10}, seen
        # the packages came through the lab's proxy, asked for by this node
        proxy_log = lab_instance.apt_dir / "upper/var/log/apt-cacher-ng/apt-cacher.log"
        lines = [
            ln
            for ln in proxy_log.read_text().splitlines()
            if f"|{inv.nodes[0].mgmt_address}|" in ln
        ]
        assert any("nginx-light" in ln for ln in lines) and any("bird2" in ln for ln in lines)
        lab_st = json.loads(
            run_cli("--lab", lab_instance.name, "lab", "status", "--json", check=True).stdout
        )
        (dev,) = [d for d in lab_st["devices"] if d["hostname"] == "pnode1"]
        assert dev["os"] == "debian_12_plain"
        again = run_cli("--config", str(cfg), "provision", "--nodes", "1", check=True)
        assert "installed" not in again.stdout
        # switched to FRR: its packages come the same way, and BIRD makes way
        frr = run_cli(
            "--config", str(cfg), "provision", "--nodes", "1", "--daemon", "frr", timeout=600
        )
        assert frr.returncode == 0, frr.stderr
        assert "installed frr, frr-pythontools" in frr.stdout and "BIRD stopped, FRR" in frr.stdout
        assert fetch_from_client(lab, inv.eip, 10) == {"Welcome to nginx 1": 10}
        assert [n["daemon"] for n in status(cfg)["nodes"]] == ["frr"]
    finally:
        run_cli("--config", str(cfg), "deprovision")
