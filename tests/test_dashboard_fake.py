"""The dashboard end to end on the in-process fake target (no root, no lab): the real app,
status poller, gather, operate, node faults and prober, on simulated servers and routers.
The lab tests (test_app_pilot, ...) check the same on real machines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from textual.widgets import DataTable

from browser import render
from ecmptui.app import EcmpApp
from ecmptui.metrics.probe_metrics import ProbeMetrics
from ecmptui.report.chart import PALETTE
from fake_target import FakeLab
from tui import drawn, node_of, seen, until


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeLab]:
    with FakeLab(tmp_path) as lab:
        yield lab


def recent(app: EcmpApp, seconds: float) -> set[str | None]:
    """Who answered in the last `seconds` (up to the newest sample)."""
    samples = list(app.traffic.samples)
    if not samples:
        return set()
    end = samples[-1].t
    return {s.backend for s in samples if s.t > end - seconds}


def laid_out(app: EcmpApp, selector: str) -> bool:
    """`selector` is on screen with a place to click (mounted is not enough)."""
    found = app.screen.query(selector)
    return bool(found) and found.first().region.area > 0


async def select(app: EcmpApp, node: str) -> None:
    table = app.screen.query_one("#nodes", DataTable)
    table.move_cursor(row=table.get_row_index(node))


async def test_withdraw_and_announce_from_the_keys(fake: FakeLab) -> None:
    metrics = ProbeMetrics("here")  # what --metrics-listen feeds
    app = EcmpApp(fake.cockpit(), rate=100, metrics=metrics)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: {"ecmp-node1", "ecmp-node2"} <= recent(app, 1), "both answer")
        await select(app, "ecmp-node2")
        await pilot.press("w")
        await until(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen", "the question")
        await pilot.press("enter")
        await until(
            pilot,
            lambda: app.traffic.timeline and app.traffic.timeline[-1].settled,
            "the withdraw measured",
        )
        rec = app.traffic.timeline[-1]
        assert (rec.node, rec.action, rec.outcome) == ("ecmp-node2", "withdraw", "done")
        assert fake.server("ecmp-node2").withdrawn
        assert recent(app, 0.5) == {"ecmp-node1"}
        await until(pilot, lambda: rec.summary() in drawn(app), "the result in the timeline")
        await until(
            pilot,
            lambda: (n := seen(app, "ecmp-node2")) and n.withdrawn,
            "the status shows the withdraw",
        )
        await pilot.press("a")  # announce: no question
        await until(pilot, lambda: "ecmp-node2" in recent(app, 0.5), "ecmp-node2 answering again")
        assert not fake.server("ecmp-node2").withdrawn
        # the same measurements reached the metrics: answers, the status, the action's cost
        text = generate_latest(metrics.registry).decode()
        for node in ("ecmp-node1", "ecmp-node2"):
            assert f'backend="{node}",outcome="answered",vantage="here"}}' in text
        assert 'ecmptui_node_withdrawn{node="ecmp-node2",vantage="here"}' in text
        withdraw = 'action="withdraw",node="ecmp-node2"'
        assert f'ecmptui_actions_total{{{withdraw},result="done",source="operator",' in text
        assert f"ecmptui_action_convergence_seconds_count{{{withdraw}," in text
        assert 'ecmptui_prober_running{vantage="here"} 1.0' in text
        await pilot.press("q")
    assert app.stream is None  # the prober was stopped on quit
    assert (
        'ecmptui_prober_running{vantage="here"} 0.0' in generate_latest(metrics.registry).decode()
    )


async def test_a_fault_shows_in_status_and_restore_undoes_it(fake: FakeLab) -> None:
    app = EcmpApp(fake.cockpit(), rate=50)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.status and len(app.status.nodes) == 2, "the status")
        await select(app, "ecmp-node1")
        await pilot.press("k")  # kill BIRD: asks first
        await until(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen", "the question")
        await pilot.press("enter")
        await until(
            pilot,
            lambda: (n := seen(app, "ecmp-node1")) and n.bgp_state == "not running",
            "BIRD not running",
        )
        assert app.status is not None
        assert node_of(app, "ecmp-node1").faults == ["kill-bird"]
        await pilot.press("b")
        await until(pilot, lambda: "not running" in drawn(app), "the BGP screen says so")
        await pilot.press("t")
        await select(app, "ecmp-node1")
        await pilot.press("r")
        await until(
            pilot,
            lambda: (n := seen(app, "ecmp-node1")) and n.established,
            "Established again",
        )
        assert node_of(app, "ecmp-node1").faults == []
        assert fake.server("ecmp-node1").bird == "running"
        await pilot.press("q")


async def test_a_router_fault_is_not_every_node_down(fake: FakeLab) -> None:
    app = EcmpApp(fake.cockpit(), rate=50, start_mode="bgp")
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: laid_out(app, "#rt-core2-kill-bird"), "the router buttons")
        await pilot.click("#rt-core2-kill-bird")
        await until(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen", "the question")
        await pilot.press("enter")
        await until(pilot, lambda: "Established 1/2" in drawn(app), "one router of two")
        assert app.status is not None
        assert all(n.announced for n in app.status.nodes)
        app.clear_notifications()  # a toast over the button would take the click
        await pilot.click("#rt-core2-restore")
        await until(pilot, lambda: fake.fleet.routers["core2"] == "running", "core2 restored")
        await pilot.press("q")


async def test_read_only_refuses_every_change_and_says_so(fake: FakeLab) -> None:
    app = EcmpApp(fake.cockpit(read_only=True), rate=50)
    notes: list[str] = []
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.status and len(app.status.nodes) == 2, "the status")
        await until(pilot, lambda: app.screen.query_one("#nodes", DataTable).row_count == 2, "rows")
        app.notify = lambda msg, **kw: notes.append(msg)  # type: ignore[method-assign]
        await select(app, "ecmp-node2")
        await pilot.press("w")
        await select(app, "ecmp-node1")
        await pilot.press("i")
        await pilot.press("b")
        await until(pilot, lambda: laid_out(app, "#rt-core1-isolate"), "the router buttons")
        await pilot.click("#rt-core1-isolate")
        await until(pilot, lambda: len(notes) == 3, "three refusals")
        assert notes == [
            "read-only session: withdraw ecmp-node2 is not allowed",
            "read-only session: isolate ecmp-node1 is not allowed",
            "read-only session: isolate core1 is not allowed",
        ]
        assert list(app.traffic.timeline) == []
        assert not any(s.withdrawn or s.isolated for s in fake.fleet.servers.values())
        assert fake.fleet.routers == {"core1": "running", "core2": "running"}
        await pilot.press("q")


async def test_a_health_withdraw_lands_on_the_timeline(fake: FakeLab) -> None:
    """A node's own health check withdrawing it is on the timeline, measured from when the
    check changed (the status carries the checker's state file)."""
    app = EcmpApp(fake.cockpit(), rate=50)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.status and len(app.status.nodes) == 2, "the status")
        server = fake.server("ecmp-node2")
        state = {"state": "up", "since": app.wall(), "interval_ms": 100, "fall": 3}
        server.files["/var/lib/ecmptui/health.json"] = json.dumps(state)
        await until(pilot, lambda: (n := seen(app, "ecmp-node2")) and n.health, "health seen")
        server.files["/var/lib/ecmptui/health.json"] = json.dumps(
            {**state, "state": "down", "since": app.wall()}
        )
        server.withdrawn = True
        await until(
            pilot,
            lambda: any(r.source == "health" for r in app.traffic.timeline),
            "the health withdraw on the timeline",
        )
        rec = next(r for r in app.traffic.timeline if r.source == "health")
        assert (rec.node, rec.action) == ("ecmp-node2", "withdraw")
        await pilot.press("q")


async def test_export_writes_the_timeline_and_the_log(fake: FakeLab, tmp_path: Path) -> None:
    out = tmp_path / "export"
    app = EcmpApp(fake.cockpit(), rate=50, export_dir=str(out))
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: len(app.events) >= 2, "the first log lines")
        # the chart shows whole seconds: both nodes answered in some already
        await until(
            pilot,
            lambda: any(
                {"ecmp-node1", "ecmp-node2"} <= set(answers)
                for answers, _ in app.traffic.buckets(span_s=5)
            ),
            "a whole second of answers from both",
        )
        await select(app, "ecmp-node1")
        await pilot.press("a")
        await until(
            pilot,
            lambda: app.traffic.timeline and app.traffic.timeline[-1].outcome == "done",
            "the announce",
        )
        await pilot.press("q")
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "bgp-log.jsonl",
        "bgp-log.md",
        "timeline.html",
        "timeline.jsonl",
        "timeline.md",
    ], names
    rows = [json.loads(line) for line in (out / "timeline.jsonl").read_text().splitlines()]
    assert [(r["node"], r["action"]) for r in rows] == [("ecmp-node1", "announce")]
    assert "ecmp-node1: BIRD Established" in (out / "bgp-log.md").read_text()
    # the same timeline as a page: Chromium draws its chart, with the announce marked
    page = render(out / "timeline.html", tmp_path)
    assert page.page_errors() == []
    assert page.dom.count('class="chart"') == 1
    assert 'data-backend="ecmp-node1"' in page.dom and 'data-backend="ecmp-node2"' in page.dom
    assert "announce ecmp-node1" in page.dom and "BIRD Established" in page.dom
    assert page.has_colour(PALETTE[0]) and page.has_colour(PALETTE[1])


async def test_a_dual_stack_is_probed_in_one_family_then_the_other(tmp_path: Path) -> None:
    with FakeLab(tmp_path, dual=True) as lab:
        app = EcmpApp(lab.cockpit(), rate=100)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: {"ecmp-node1", "ecmp-node2"} <= recent(app, 1), "answers")
            front6 = lab.http6
            assert front6 is not None and lab.http.hits > 0 and front6.hits == 0
            await until(pilot, lambda: "IPv4 EIP" in app.probe_state, "the family named")
            await pilot.press("6")
            await until(pilot, lambda: "IPv6 EIP" in app.probe_state, "probing IPv6")
            await until(pilot, lambda: front6.hits > 20, "the IPv6 front answering")
            await until(pilot, lambda: {"ecmp-node1", "ecmp-node2"} <= recent(app, 1), "both")
            assert any("probing the IPv6 EIP now" in e.text for e in app.events)
            v4_hits = lab.http.hits
            await pilot.press("6")  # and back
            await until(pilot, lambda: "IPv4 EIP" in app.probe_state, "probing IPv4 again")
            await until(pilot, lambda: lab.http.hits > v4_hits + 20, "the IPv4 front again")


async def test_a_single_family_says_there_is_nothing_to_switch_to(fake: FakeLab) -> None:
    app = EcmpApp(fake.cockpit(), rate=100)
    notes: list[str] = []
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: bool(recent(app, 1)), "answers")
        app.notify = lambda msg, **kw: notes.append(msg)  # type: ignore[method-assign]
        await pilot.press("6")
        await until(pilot, lambda: any("one address family" in n for n in notes), "the warning")
        assert "IPv" not in app.probe_state and fake.http.hits > 0
