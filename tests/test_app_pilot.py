"""The dashboard driven with Textual's pilot against the real lab."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from conftest import Deployed, make_config, probers, run_cli
from ecmptui import config
from ecmptui.app import EcmpApp
from ecmptui.cockpit import LocalCockpit
from ecmptui.lab.control import LabInfo
from ecmptui.waits import scaled
from tui import drawn, node_of, until

pytestmark = pytest.mark.lab


async def act(pilot: Pilot[None], node: str, key: str, confirm: bool = True) -> None:
    """Select `node` in the Traffic screen's table and press `key` (then Enter, to confirm
    an action that takes the node out)."""
    app = pilot.app
    table = app.screen.query_one("#nodes", DataTable)
    await until(pilot, lambda: node in table.rows, f"{node} in the node table", timeout=20)
    table.move_cursor(row=table.get_row_index(node))
    await pilot.press(key)
    if confirm:
        await until(
            pilot,
            lambda: type(app.screen).__name__ == "ConfirmScreen",
            "the confirmation",
            timeout=5,
        )
        await pilot.press("enter")


def recent_backends(app: Any, seconds: float) -> set[str | None]:
    now = time.monotonic()
    return {s.backend for s in app.traffic.samples if now - seconds - 1 <= s.t < now - 1}


async def test_provision_bgp_and_traffic_screens(lab: LabInfo, tmp_path: Path) -> None:
    cfg = make_config(tmp_path, tag="ecmpt-ui", prefix="ui")
    app = EcmpApp(LocalCockpit(config.load(cfg)), rate=100, start_mode="provision")
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.click("#btn-provision")
            steps = app.get_screen("provision").query_one("#steps", DataTable)
            await until(
                pilot,
                lambda: all("✓" in str(steps.get_cell(k, "icon")) for k in steps.rows),
                "every step done",
                timeout=90,
            )
            # BGP screen: Established for each node
            await pilot.press("b")
            await until(
                pilot,
                lambda: (
                    app.status
                    and len(app.status.nodes) == 2
                    and all(n.established for n in app.status.nodes)
                ),
                "both sessions Established",
                timeout=30,
            )
            table = app.screen.query_one("#bgp-nodes", DataTable)
            assert "Established" in str(table.get_cell("ui1", "bgp"))
            assert "Established" in str(table.get_cell("ui2", "bgp"))
            # Traffic screen: both answer; withdraw ui2 moves everything to ui1
            await pilot.press("t")
            await until(
                pilot,
                lambda: {"ui1", "ui2"} <= recent_backends(app, 2),
                "answers from both nodes",
                timeout=30,
            )
            await act(pilot, "ui2", "w")
            await until(
                pilot,
                lambda: app.traffic.timeline and app.traffic.timeline[-1].settled,
                "the withdraw to be measured",
                timeout=30,
            )
            rec = app.traffic.timeline[-1]
            assert (rec.node, rec.action, rec.outcome) == ("ui2", "withdraw", "done")
            assert rec.convergence_ms is not None and rec.convergence_ms < 1000
            assert sum(rec.failed.values()) == 0
            # the settle window behind the record was clean: only ui1 answers since
            assert recent_backends(app, 1) == {"ui1"}
            timeline = app.screen.query_one("#timeline", DataTable)
            assert "converged" in str(timeline.get_cell(str(rec.seq), "result"))
            # the whole result, not cut
            await until(pilot, lambda: rec.summary() in drawn(app), "the result drawn")
            await act(pilot, "ui2", "a", confirm=False)
            await until(
                pilot, lambda: "ui2" in recent_backends(app, 1), "ui2 answering again", timeout=10
            )
            # deprovision from the dashboard: the prober stops, the nodes go
            await pilot.press("p")
            await pilot.press("D")
            await until(
                pilot,
                lambda: type(app.screen).__name__ == "ConfirmScreen",
                "the question",
                timeout=5,
            )
            await pilot.press("enter")
            await until(
                pilot,
                lambda: app.status is not None and not app.status.nodes,
                "no nodes left",
                timeout=90,
            )
            await until(
                pilot,
                lambda: app.stream is None and not app.traffic.backends,
                "the prober stopped and the traffic forgotten",
                timeout=10,
            )
            assert not probers(), "a prober outlived the deployment"
            await pilot.press("t")
            await until(pilot, lambda: "Nothing is provisioned yet" in drawn(app), "what next")
            await pilot.press("q")
        assert app.stream is None  # the prober was stopped on quit
    finally:
        run_cli("--config", str(cfg), "deprovision")


async def test_read_only_refuses_actions_and_says_so(deployed: Deployed) -> None:
    cfg, _ = deployed
    before = json.loads(run_cli("--config", str(cfg), "status", "--json", check=True).stdout)
    app = EcmpApp(LocalCockpit(config.load(cfg), read_only=True), rate=50)
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.screen.query_one("#nodes", DataTable)
        await until(pilot, lambda: len(table.rows) == 2, "the node table", timeout=20)
        notes = []
        app.notify = lambda msg, **kw: notes.append(msg)  # type: ignore[method-assign]
        await act(pilot, "tnode2", "w", confirm=False)
        await act(pilot, "tnode1", "i", confirm=False)
        await pilot.press("p")
        await pilot.click("#btn-provision")
        await until(pilot, lambda: len(notes) >= 3, "three refusals")
        assert notes == [
            "read-only session: withdraw tnode2 is not allowed",
            "read-only session: isolate tnode1 is not allowed",
            "read-only session: provisioning is not allowed",
        ]
        assert list(app.traffic.timeline) == []
        await pilot.press("q")
    after = json.loads(run_cli("--config", str(cfg), "status", "--json", check=True).stdout)
    assert [n["withdrawn"] for n in after["nodes"]] == [False, False]
    assert after["router"]["nodes"] == before["router"]["nodes"]


async def test_a_frozen_node_is_unresponsive_and_restore_works_from_the_dashboard(
    deployed: Deployed,
) -> None:
    """A frozen BIRD: that node is `unresponsive` within 3.5 s on an idle machine (longer
    under load) while the other keeps updating;
    Restore from the dashboard works at once (it does not queue behind the hung poll)."""
    cfg, _ = deployed
    app = EcmpApp(LocalCockpit(config.load(cfg)), rate=50)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(
                pilot,
                lambda: app.status and all(n.established for n in app.status.nodes),
                "both Established",
                timeout=30,
            )
            await act(pilot, "tnode2", "f")  # Freeze, confirmed
            await until(
                pilot,
                lambda: app.traffic.timeline and app.traffic.timeline[-1].outcome == "done",
                "the freeze",
                timeout=20,
            )
            frozen_at = time.time()
            # the poller's 2 s deadline grows with the machine's load (no false alarm on a
            # busy machine), and so does this bound: the deadline plus a poll
            bound = scaled(2.0) + 1.5
            await until(
                pilot,
                lambda: node_of(app, "tnode2").bgp_state == "unresponsive",
                "tnode2 unresponsive",
                timeout=bound,
            )
            assert time.time() - frozen_at <= bound
            before = node_of(app, "tnode1").updated
            assert before is not None
            await until(  # the other keeps updating
                pilot,
                lambda: (node_of(app, "tnode1").updated or 0) > before + 1,
                "tnode1 updated again",
            )
            assert node_of(app, "tnode1").established
            assert "unresponsive" in drawn(app)
            t0 = time.monotonic()
            await act(pilot, "tnode2", "r", confirm=False)  # Restore: no question
            await until(
                pilot,
                lambda: (
                    app.traffic.timeline[-1].action == "restore"
                    and app.traffic.timeline[-1].outcome != "running"
                ),
                "the restore",
                timeout=15,
            )
            assert app.traffic.timeline[-1].outcome == "done", app.traffic.timeline[-1].outcome
            assert time.monotonic() - t0 < 10
            await until(
                pilot,
                lambda: node_of(app, "tnode2").established,
                "tnode2 Established again",
                timeout=30,
            )
            await pilot.press("q")
    finally:
        run_cli("--config", str(cfg), "node", "restore", "tnode2")
