"""Traffic, faults and drills against the real lab (acceptance of the prober issue)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from browser import render
from conftest import Deployed, on_node, run_cli, status, wait_for
from ecmptui.lab.control import LabInfo
from ecmptui.report.chart import PALETTE

pytestmark = pytest.mark.lab


def probe(cfg: Path, *args: str) -> dict:
    proc = run_cli("--config", str(cfg), "probe", "--json", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_distribution_over_two_nodes(deployed: Deployed) -> None:
    cfg, _ = deployed
    summary = probe(cfg, "--rate", "400", "--duration", "1")
    assert summary["requests"] == 400 and summary["failed"] == 0
    shares = {b: n / 400 for b, n in summary["by_backend"].items()}
    assert set(shares) == {"tnode1", "tnode2"}
    assert all(0.35 <= s <= 0.65 for s in shares.values()), shares


def test_jsonl_streams_one_record_per_request(deployed: Deployed) -> None:
    cfg, _ = deployed
    proc = run_cli(
        "--config", str(cfg), "probe", "--jsonl", "--rate", "100", "--duration", "0.5", check=True
    )
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(records) == 50
    assert all({"t", "backend", "error", "latency_ms"} == set(r) for r in records)
    assert {r["backend"] for r in records} == {"tnode1", "tnode2"}


def _health(cfg: Path, action: str) -> None:
    """Stop or start tnode1's health check (it would withdraw the node within ~0.3 s)."""
    from ecmptui.node import health as node_health

    on_node(cfg, "tnode1", getattr(node_health, f"{action}_health"))


def test_stop_nginx_fault_is_refused_traffic_and_restore_clears_it(deployed: Deployed) -> None:
    cfg, _ = deployed
    _health(cfg, "stop")  # this test is about the fault itself, with nobody withdrawing
    run_cli("--config", str(cfg), "node", "fault", "tnode1", "stop-nginx", check=True)
    try:
        broken = probe(cfg, "--rate", "200", "--duration", "1")
    finally:
        out = run_cli("--config", str(cfg), "node", "restore", "tnode1", check=True).stdout
        _health(cfg, "start")
    assert "restored (stop-nginx)" in out
    assert broken["errors"].get("refused", 0) >= 50
    assert set(broken["errors"]) <= {"refused", "reset"}
    assert broken["by_backend"] == {"tnode2": broken["requests"] - broken["failed"]}
    healed = probe(cfg, "--rate", "200", "--duration", "1")
    assert healed["failed"] == 0 and set(healed["by_backend"]) == {"tnode1", "tnode2"}


def test_restore_on_a_healthy_node_does_nothing(deployed: Deployed) -> None:
    cfg, _ = deployed
    out = run_cli("--config", str(cfg), "node", "restore", "tnode2", check=True).stdout
    assert "nothing to restore" in out


@pytest.fixture(scope="module")
def drill(deployed: Deployed, tmp_path_factory: pytest.TempPathFactory) -> Any:
    cfg, _ = deployed
    out = tmp_path_factory.mktemp("drill")
    report = out / "report.md"
    proc = run_cli(
        "--config",
        str(cfg),
        "drill",
        "--family",
        "ipv4",  # IPv6's figures: test_dual_stack
        "--rate",
        "200",
        "--json",
        "--report",
        str(report),
        "--report",
        str(out / "report.html"),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    rows = json.loads(proc.stdout)["scenarios"]
    keyed = {(r["name"], r["bfd"], r["health"]): r for r in rows}
    assert len(keyed) == len(rows)
    return keyed, report.read_text(), out / "report.html"


def test_drill_runs_every_scenario_and_reports(drill: Any) -> None:
    rows, report, _ = drill
    names = {name for name, _, _ in rows}
    assert names == {
        "withdraw",
        "shutdown",
        "kill-bird",
        "freeze-bird",
        "isolate",
        "stop-nginx",
        "reboot",
        "router-kill",
        "router-freeze",
        "router-isolate",
        "remove-node",
        "add-node",
    }
    for fault in ("kill-bird", "freeze-bird", "isolate"):
        assert (fault, True, True) in rows and (fault, False, True) in rows
    for bfd in (True, False):  # stop-nginx with the health check and without it
        assert ("stop-nginx", bfd, True) in rows and ("stop-nginx", bfd, False) in rows
    for r in rows.values():
        assert set(r["failed"]) >= {"refused", "reset", "timeout"}
        assert {"name", "bfd", "convergence_ms", "before", "after", "recovered"} <= set(r)
        assert sum(r["before"].values()) > 100  # a second at 200 req/s, both nodes
        assert len(r["before"]) == (1 if r["name"] == "add-node" else 2)  # it was out
    with_flows = [r for r in rows.values() if r["flows"]]
    assert {r["name"] for r in with_flows} == {"remove-node", "add-node"}  # 100 flows each
    # the scenarios' table (header + a row each) and the flows' table (header + a row each)
    assert report.count("\n| ") == len(rows) + 1 + len(with_flows) + 1
    for name in ("router-kill", "router-freeze", "router-isolate"):  # two routers: no loss
        for bfd in (True, False):
            r = rows[(name, bfd, None)]
            assert sum(r["failed"].values()) == 0 and r["fib_ms"] is None, r


def test_the_default_drills_html_report_reads_in_chromium(drill: Any, tmp_path: Path) -> None:
    """Every scenario of the default drill has its chart, drawn with both backends' lines
    and the action marked; the figures match the JSON; the page logs no error."""
    rows, _, html = drill
    page = render(html, tmp_path, height=400 * len(rows) + 1200)
    assert page.page_errors() == []
    assert page.dom.count('class="chart"') == len(rows)
    for i, r in enumerate(rows.values(), start=1):
        svg = page.dom.split(f'id="chart-{i}"', 1)[1].split("</svg>", 1)[0]
        backends = set(re.findall(r'data-backend="([^"]+)"', svg))
        assert {"tnode1"} <= backends, (r["name"], backends)
        assert 'class="mark action"' in svg, r["name"]
        failed = r["failed"]
        assert f"{failed['refused']}/{failed['reset']}/{failed['timeout']}" in page.dom
    assert page.share_not_white() > 0.05
    assert page.has_colour(PALETTE[0]) and page.has_colour(PALETTE[1])


def test_every_scenario_restores_the_lab(drill: Any) -> None:
    rows, *_ = drill
    for key, r in rows.items():
        assert r["recovered"] is True, (key, r["notes"])
        assert not any("status differs" in n for n in r["notes"]), key


def test_withdraw_is_lossless_and_fast(drill: Any) -> None:
    r = drill[0][("withdraw", False, True)]
    assert sum(r["failed"].values()) == 0
    assert r["last_answer_ms"] is None or r["last_answer_ms"] <= 50
    assert r["recovery_ms"] is not None and r["recovery_ms"] <= 2000
    assert set(r["after"]) == {"tnode1"}


def test_isolate_with_and_without_bfd(drill: Any) -> None:
    rows = drill[0]
    with_bfd, without = rows[("isolate", True, True)], rows[("isolate", False, True)]
    assert with_bfd["convergence_ms"] is not None and with_bfd["convergence_ms"] <= 1000
    assert without["convergence_ms"] is not None and without["convergence_ms"] <= 5000
    assert without["convergence_ms"] > with_bfd["convergence_ms"]
    assert with_bfd["failed"]["timeout"] < without["failed"]["timeout"]


def test_stop_nginx_without_health_check_fails_until_restore(drill: Any) -> None:
    r = drill[0][("stop-nginx", False, False)]
    assert r["failed"]["refused"] > 100
    assert r["convergence_ms"] is None  # BIRD keeps announcing: never steady by itself
    assert r["recovered"] is True


def test_stop_nginx_with_health_check_withdraws_within_a_second(drill: Any) -> None:
    rows, report, _ = drill
    r = rows[("stop-nginx", False, True)]
    assert r["convergence_ms"] is not None and r["convergence_ms"] <= 1000
    assert 0 < r["failed"]["refused"] <= 200  # at 200 req/s: failures stop within 1 s
    assert set(r["after"]) == {"tnode1"} and r["recovered"] is True
    # the report shows the contrast side by side
    assert "| stop-nginx | off | on |" in report and "| stop-nginx | off | off |" in report


def test_faults_are_refused_off_the_lab(lab: LabInfo, tmp_path: Path) -> None:
    path = tmp_path / "metal.toml"
    path.write_text(
        f'target = "metal"\n[metal]\nendpoint = "{lab.endpoint}"\n'
        f'project_id = "{lab.project_id}"\nca_file = "{lab.ca_file}"\n'
    )
    proc = run_cli(
        "--config",
        str(path),
        "node",
        "fault",
        "1",
        "isolate",
        env={"METAL_AUTH_TOKEN": lab.token()},
    )
    assert proc.returncode == 2
    assert "faults are lab-only" in proc.stderr
    proc = run_cli(
        "--config",
        str(path),
        "drill",
        "--scenario",
        "isolate",
        env={"METAL_AUTH_TOKEN": lab.token()},
    )
    assert proc.returncode == 2 and "lab only" in proc.stderr


def _drill_until_it_acts(cfg: Path, scenario: str, node: str) -> Any:
    """A drill started in the background, returned once it has acted on `node`."""
    import os
    import subprocess
    import sys

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ecmptui",
            "--config",
            str(cfg),
            "drill",
            "--scenario",
            scenario,
            "--node",
            node,
            "--rate",
            "50",
        ],
        cwd="/",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
    )
    assert proc.stdout is not None
    line = ""
    for _ in range(2000):  # bounded: the first scenario acts within seconds
        line = proc.stdout.readline()
        if not line or f"acted on {node}" in line:
            break
    if f"acted on {node}" not in line:
        proc.kill()
        raise AssertionError(f"the drill never acted on {node}: {line!r}")
    return proc


def test_sigterm_mid_drill_undoes_the_fault_and_bfd(deployed: Deployed) -> None:
    """A drill ended by SIGTERM between its fault and its restore undoes both the fault and
    the BFD change it made, like Ctrl-C."""
    import signal

    cfg, _ = deployed

    async def bfd_in_config(node: Any) -> Any:
        return "bfd on;" in (await node.read(node.layout.bird_conf) or "")

    bfd_before = on_node(cfg, "tnode2", bfd_in_config)
    proc = _drill_until_it_acts(cfg, "kill-bird", "tnode2")
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM  # not 130, which says Ctrl-C
    assert wait_for(
        lambda: all(n["bgp_state"] == "Established" for n in status(cfg)["nodes"]), timeout=30
    )
    assert on_node(cfg, "tnode2", bfd_in_config) == bfd_before
    faults = run_cli("--config", str(cfg), "node", "restore", "tnode2", check=True).stdout
    assert "nothing to restore" in faults  # the drill had undone its fault itself


def test_a_sigkilled_drill_leaves_faults_that_status_check_and_drill_name(
    deployed: Deployed,
) -> None:
    """Regression (issue 22): a drill killed with SIGKILL left isolate and BFD on, and
    nothing said so. Now the node's faults are in its status, `check` and a new drill name
    them with their undo, and `node restore` puts BFD back as it was."""
    import signal

    cfg, _ = deployed

    async def bfd_in_config(node: Any) -> Any:
        return "bfd on;" in (await node.read(node.layout.bird_conf) or "")

    assert on_node(cfg, "tnode2", bfd_in_config) is False
    proc = _drill_until_it_acts(cfg, "isolate", "tnode2")  # isolate runs with BFD first
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    try:
        st = {n["name"]: n for n in status(cfg)["nodes"]}
        assert st["tnode2"]["faults"] == ["drill-bfd-on", "isolate"]
        assert st["tnode1"]["faults"] == ["drill-bfd-on"]
        text = run_cli("--config", str(cfg), "status").stdout
        assert "undo: ecmptui node restore tnode2" in text
        rows = {
            r["name"]: r
            for r in json.loads(run_cli("--config", str(cfg), "check", "--json").stdout)
        }
        assert (
            "carries drill-bfd-on, isolate (undo: ecmptui node restore tnode2)"
            in rows["tnode2"]["problems"]
        )
        drill = run_cli("--config", str(cfg), "drill", "--scenario", "withdraw", timeout=120)
        assert (
            drill.returncode == 2
            and "tnode2 carries drill-bfd-on, isolate (undo: ecmptui node restore tnode2)"
            in drill.stderr
        )
    finally:
        out = {
            n: run_cli("--config", str(cfg), "node", "restore", n, check=True).stdout
            for n in ("tnode1", "tnode2")
        }
    assert "BFD back off as before the drill" in out["tnode2"] and "isolate" in out["tnode2"]
    assert on_node(cfg, "tnode2", bfd_in_config) is False
    assert on_node(cfg, "tnode1", bfd_in_config) is False
    assert wait_for(
        lambda: all(
            n["bgp_state"] == "Established" and not n["faults"] for n in status(cfg)["nodes"]
        ),
        timeout=30,
    )


def test_an_operator_cannot_act_on_a_node_while_a_drill_owns_it(deployed: Deployed) -> None:
    """The drill holds the deployment: a withdraw meanwhile is refused (busy), so the
    drill's restore can never undo an operator's change."""

    cfg, _ = deployed
    proc = _drill_until_it_acts(cfg, "withdraw", "tnode2")
    try:
        busy = run_cli("--config", str(cfg), "node", "withdraw", "tnode1")
        assert busy.returncode == 2
        assert busy.stderr.startswith("ecmptui: error: busy: drill by PID ")
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    st = status(cfg)
    assert [n["withdrawn"] for n in st["nodes"]] == [False, False]
