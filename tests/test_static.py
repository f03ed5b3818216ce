"""Target `static`: a lab-proven deployment exported and driven with no API at all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from textual.widgets import Button, DataTable

from conftest import Deployed, run_cli
from ecmptui.targets import dashboard_read_only
from tui import until

pytestmark = pytest.mark.lab
NO_API = {"METAL_AUTH_TOKEN": "", "PACKET_AUTH_TOKEN": ""}


@pytest.fixture(scope="module")
def static_cfg(deployed: Deployed, tmp_path_factory: pytest.TempPathFactory) -> Any:
    cfg, _ = deployed
    out = tmp_path_factory.mktemp("static") / "static.toml"
    proc = run_cli("--config", str(cfg), "inventory", "export", "--output", str(out), check=True)
    assert f"wrote {out}" in proc.stdout
    text = out.read_text()
    assert 'target = "static"' in text and "read_only = true" in text
    return out


def cli(cfg: Path, *args: Any, check: Any = True) -> Any:
    return run_cli("--config", str(cfg), *args, env=NO_API, check=check)


def test_export_has_no_api_settings(static_cfg: Path) -> None:
    text = static_cfg.read_text()
    assert "[metal]" not in text and "token" not in text.lower()
    assert text.count("[[static.nodes]]") == 2
    assert 'eips = ["203.0.113.' in text and '", "2001:db8:ec:1ff::' in text  # both families


def test_status_probe_and_check_without_any_api(static_cfg: Path) -> None:
    st = json.loads(cli(static_cfg, "status", "--json").stdout)
    assert st["target"] == "static" and st["router"] is None
    assert [n["bgp_state"] for n in st["nodes"]] == ["Established", "Established"]
    assert [n["api_status"] for n in st["nodes"]] == ["n/a", "n/a"]
    summary = json.loads(
        cli(static_cfg, "probe", "--json", "--rate", "200", "--duration", "1").stdout
    )
    assert summary["failed"] == 0 and set(summary["by_backend"]) == {"tnode1", "tnode2"}
    checks = json.loads(cli(static_cfg, "check", "--json").stdout)
    assert [(c["kind"], c["name"], c["ok"]) for c in checks] == [
        ("node", "tnode1", True),
        ("node", "tnode2", True),
        ("service", "service ipv4", True),
        ("service", "service ipv6", True),  # the exported config lists both EIPs
    ]
    assert checks[-2]["answers"].keys() == checks[-1]["answers"].keys() == {"tnode1", "tnode2"}


def test_withdraw_announce_and_the_withdraw_drill(static_cfg: Path) -> None:
    cli(static_cfg, "node", "withdraw", "tnode2")
    try:
        summary = json.loads(
            cli(static_cfg, "probe", "--json", "--rate", "200", "--duration", "1").stdout
        )
        assert summary["by_backend"] == {"tnode1": 200}
    finally:
        cli(static_cfg, "node", "announce", "tnode2")
    proc = cli(static_cfg, "drill", "--scenario", "withdraw", "--json")
    rows = json.loads(proc.stdout)["scenarios"]
    assert [r["family"] for r in rows] == [4, 6]  # both EIPs the config lists
    for row in rows:
        assert row["recovered"] is True and sum(row["failed"].values()) == 0


def test_a_static_drain_says_it_cannot_see_the_router(static_cfg: Path) -> None:
    """Regression (issue 22): on static/metal, drain claimed the router did hash ECMP."""
    proc = cli(static_cfg, "node", "drain", "tnode1", check=False)
    assert proc.returncode == 2 and "cannot see this router's ECMP" in proc.stderr
    assert "hash-threshold" not in proc.stderr


def test_lab_faults_are_refused(static_cfg: Path) -> None:
    proc = cli(static_cfg, "node", "fault", "tnode1", "isolate", check=False)
    assert proc.returncode == 2 and "faults are lab-only" in proc.stderr
    proc = cli(static_cfg, "drill", "--scenario", "kill-bird", check=False)
    assert proc.returncode == 2 and "lab only" in proc.stderr
    proc = cli(static_cfg, "provision", check=False)
    assert proc.returncode == 2 and "nothing to provision" in proc.stderr


def _nodes(proc: Any) -> list[dict]:
    """The node rows of `check --json` (the service's row aside)."""
    return [r for r in json.loads(proc.stdout) if r["kind"] == "node"]


def test_broken_nodes_are_reported_each_and_the_rest_keep_working(
    static_cfg: Path, tmp_path: Path
) -> None:
    text = static_cfg.read_text()
    good = text.split("[[static.nodes]]")[1]  # tnode1's entry
    stray = asyncssh.generate_private_key("ssh-ed25519")
    stray.write_private_key(tmp_path / "stray_key")
    empty_known = tmp_path / "empty_known_hosts"
    empty_known.write_text("")
    entries = [
        good,
        good.replace('name = "tnode1"', 'name = "nobird"').replace(
            "bird/bird.ctl", "bird/nothing-here.ctl"
        ),
        good.replace('name = "tnode1"', 'name = "wrongkey"') + f'key = "{tmp_path}/stray_key"\n',
        good.replace('name = "tnode1"', 'name = "nokey"') + f'key = "{tmp_path}/no_such_key"\n',
    ]
    head = text.split("[[static.nodes]]")[0]
    (tmp_path / "broken.toml").write_text(head + "".join("[[static.nodes]]" + e for e in entries))
    checks = {
        c["name"]: c
        for c in json.loads(cli(tmp_path / "broken.toml", "check", "--json", check=False).stdout)
    }
    assert checks["tnode1"]["ok"] is True
    assert any("BIRD is not running" in p for p in checks["nobird"]["problems"])
    assert checks["nobird"]["ssh"] is True and checks["nobird"]["nginx"] is True
    assert any("was refused" in p for p in checks["wrongkey"]["problems"])
    # a key that is not there is named as missing, not as "refused" (issue 22)
    assert any(
        f"SSH key {tmp_path}/no_such_key does not exist" in p for p in checks["nokey"]["problems"]
    )
    st = json.loads(cli(tmp_path / "broken.toml", "status", "--json").stdout)
    by_name = {n["name"]: n for n in st["nodes"]}
    assert by_name["tnode1"]["bgp_state"] == "Established"
    assert by_name["nobird"]["bgp_state"] == "not running"
    assert by_name["wrongkey"]["bgp_state"] == "unreachable"
    # an unknown host key (strict policy, empty known_hosts) and a missing EIP on lo
    (tmp_path / "unknown.toml").write_text(
        head.replace(str(static_cfg) + ".known_hosts", str(empty_known)).replace(
            'eips = ["', 'eips = ["203.0.113.250", "'
        )
        + "[[static.nodes]]"
        + good
    )
    [c] = _nodes(cli(tmp_path / "unknown.toml", "check", "--json", check=False))
    assert c["ok"] is False and any("unknown host" in p for p in c["problems"])
    (tmp_path / "noeip.toml").write_text(
        head.replace('eips = ["', 'eips = ["203.0.113.250", "') + "[[static.nodes]]" + good
    )
    [c] = _nodes(cli(tmp_path / "noeip.toml", "check", "--json", check=False))
    assert c["problems"] == ["203.0.113.250 is not on lo"]


def test_static_dashboard_is_read_only_by_default(static_cfg: Path) -> None:
    from ecmptui import config

    s = config.load(static_cfg, env=NO_API)
    assert dashboard_read_only(s) is True
    assert config.load(static_cfg, env=NO_API).read_only is True


async def test_provision_screen_checks_static_nodes(static_cfg: Path) -> None:
    from ecmptui import config
    from ecmptui.app import EcmpApp
    from ecmptui.cockpit import LocalCockpit

    settings = config.load(static_cfg, env=NO_API)
    app = EcmpApp(
        LocalCockpit(settings, read_only=dashboard_read_only(settings)),
        rate=20,
        start_mode="provision",
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.screen.query("#btn-provision"), "the Provision screen")
        assert str(app.screen.query_one("#btn-provision", Button).label) == "Check nodes"
        await pilot.click("#btn-provision")
        dev = app.screen.query_one("#devices", DataTable)
        # the check runs over SSH to both nodes, then probes
        await until(pilot, lambda: dev.row_count == 4, "a row per node and family", timeout=20)
        assert "Established" in str(dev.get_cell("tnode1", "detail"))
        assert "✓" in str(dev.get_cell("tnode2", "icon"))
        assert "✓" in str(dev.get_cell("service ipv4", "icon"))  # and the service end to end
        assert "✓" in str(dev.get_cell("service ipv6", "icon"))
        assert "answered (by tnode1, tnode2)" in str(dev.get_cell("service ipv6", "detail"))
        await pilot.press("q")
