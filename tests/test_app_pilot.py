"""The dashboard driven with Textual's pilot against the real lab."""

from __future__ import annotations

import json
import time

import pytest

from conftest import make_config, run_cli
from ecmptui import config
from ecmptui.app import EcmpApp
from ecmptui.cockpit import Cockpit
from ecmptui.screens.traffic import NodeRow

pytestmark = pytest.mark.lab


async def until(pilot, predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await pilot.pause(0.1)


def button(app, node: str, action: str):
    rows = [r for r in app.screen.query(NodeRow) if r.node_name == node]
    assert rows, f"no row for {node} on {type(app.screen).__name__}: " \
        f"{[r.node_name for r in app.screen.query(NodeRow)]}"
    return rows[0].query_one(f"#act-{action}")


def recent_backends(app, seconds: float) -> set[str | None]:
    now = time.monotonic()
    return {s.backend for s in app.traffic.samples if now - seconds - 1 <= s.t < now - 1}


async def test_provision_bgp_and_traffic_screens(lab, tmp_path):
    cfg = make_config(tmp_path, tag="ecmpt-ui", prefix="ui")
    app = EcmpApp(Cockpit(config.load(cfg)), rate=100, start_mode="provision")
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.click("#btn-provision")
            steps = app.get_screen("provision").query_one("#steps")
            await until(pilot, lambda: all("✓" in str(steps.get_cell(k, "icon"))
                                           for k in steps.rows), 90, "every step done")
            # BGP screen: Established for each node
            await pilot.press("b")
            await until(pilot, lambda: app.status and len(app.status.nodes) == 2 and all(
                n.established for n in app.status.nodes), 30,
                "both sessions Established")
            table = app.screen.query_one("#bgp-nodes")
            assert "Established" in str(table.get_cell("ui1", "bird"))
            assert "Established" in str(table.get_cell("ui2", "bird"))
            # Traffic screen: both answer; withdraw ui2 moves everything to ui1
            await pilot.press("t")
            await until(pilot, lambda: {"ui1", "ui2"} <= recent_backends(app, 2), 30,
                        "answers from both nodes")
            await until(pilot, lambda: all(r.region.height for r in app.screen.query(NodeRow)),
                        5, "node rows laid out")
            await pilot.click(button(app, "ui2", "withdraw"))
            await until(pilot, lambda: app.traffic.timeline and app.traffic.timeline[-1].settled,
                        30, "the withdraw to be measured")
            rec = app.traffic.timeline[-1]
            assert (rec.node, rec.action, rec.outcome) == ("ui2", "withdraw", "done")
            assert rec.convergence_ms is not None and rec.convergence_ms < 1000
            assert sum(rec.failed.values()) == 0
            await pilot.pause(1.5)
            assert recent_backends(app, 1) == {"ui1"}
            timeline = app.screen.query_one("#timeline")
            assert "converged" in str(timeline.get_cell(str(len(app.traffic.timeline) - 1),
                                                        "result"))
            await pilot.click(button(app, "ui2", "announce"))
            await until(pilot, lambda: "ui2" in recent_backends(app, 1), 10,
                        "ui2 answering again")
            await pilot.press("q")
        assert app.stream is None  # the prober was stopped on quit
    finally:
        run_cli("--config", str(cfg), "deprovision")


async def test_read_only_refuses_actions_and_says_so(deployed):
    cfg, _ = deployed
    before = json.loads(run_cli("--config", str(cfg), "status", "--json", check=True).stdout)
    app = EcmpApp(Cockpit(config.load(cfg), read_only=True), rate=50)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: len(app.screen.query(NodeRow)) == 2 and all(
            r.region.height for r in app.screen.query(NodeRow)), 20, "node rows laid out")
        notes = []
        app.notify = lambda msg, **kw: notes.append(msg)  # what the user would see
        await pilot.click(button(app, "tnode2", "withdraw"))
        await pilot.click(button(app, "tnode1", "isolate"))
        await pilot.press("p")
        await pilot.click("#btn-provision")
        await pilot.pause(0.5)
        assert notes == ["read-only session: withdraw tnode2 is not allowed",
                         "read-only session: isolate tnode1 is not allowed",
                         "read-only session: provisioning is not allowed"]
        assert app.traffic.timeline == []
        await pilot.press("q")
    after = json.loads(run_cli("--config", str(cfg), "status", "--json", check=True).stdout)
    assert [n["withdrawn"] for n in after["nodes"]] == [False, False]
    assert after["router"]["nodes"] == before["router"]["nodes"]
