"""What the dashboard draws, checked as text: values that arrive after the first frame are
not cut, 16 nodes keep distinct names, colours and glyphs, dialogs answer to Enter and Esc,
the empty state says what to do next. Fixed data, no lab."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Never

import pytest
from textual.widgets import DataTable, Input

from ecmptui.actions import Action
from ecmptui.deployment.status import DeploymentStatus
from ecmptui.screens.chart import GLYPHS, PALETTE, style_for
from ecmptui.screens.traffic import TrafficScreen
from fixed_data import WALL, many_nodes, prime, update_after_first_draw
from tui import drawn, make_app, until

SIZES = [(80, 24), (200, 50)]


pytestmark = pytest.mark.usefixtures("utc")


def widths_fit(table: Any) -> list[str]:
    """Cells wider than their column (what would be cut)."""
    cut = []
    for row_key in table.rows:
        for col_key, column in table.columns.items():
            value = table.get_cell(row_key, col_key)
            plain = (
                value.plain if hasattr(value, "plain") else re.sub(r"\[/?[^\]]*\]", "", str(value))
            )
            if len(plain) > column.content_width:
                cut.append(f"{row_key.value}/{col_key.value}: {plain!r}")
    return cut


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_values_that_grow_after_the_first_frame_are_not_cut(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=size) as pilot:
        prime(app)
        app.publish()
        await pilot.pause()
        update_after_first_draw(app)
        app.publish()
        await pilot.pause()
        timeline = app.screen.query_one("#timeline", DataTable)
        assert widths_fit(timeline) == []
        assert widths_fit(app.screen.query_one("#nodes", DataTable)) == []
        result = app.traffic.timeline[-1].summary()
        assert result == "failed 9 (timeout 9), converged 82 ms, FIB +3.9 ms"
        if size[0] >= 200:
            assert result in drawn(app)
        await pilot.press("b")
        await pilot.pause()
        bgp = app.screen.query_one("#bgp-nodes", DataTable)
        assert widths_fit(bgp) == []
        if size[0] >= 200:
            assert "BGP Error: Hold timer expired (peer 169.254.255.1)" in drawn(app)
        await pilot.press("p")
        await pilot.pause()
        assert widths_fit(app.screen.query_one("#steps", DataTable)) == []


async def test_stale_status_is_shown_with_its_age(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        prime(app)
        app.publish()
        await pilot.pause()
        text = drawn(app)
        assert "status updated 5.2 s ago" in text  # the stalest node decides
        assert "0.4s" in text and "5.2s" in text  # each node's own age
        line = app.status_line()
        assert any("red" in str(span.style) for span in line.spans)


async def test_sixteen_nodes_keep_their_names_colours_and_glyphs(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(200, 50)) as pilot:
        prime(app)
        app.show_status(many_nodes(16))
        app.publish()
        await pilot.pause()
        text = drawn(app)
        for i in range(1, 17):
            assert f"ecmp-node{i} " in text, f"ecmp-node{i} cut or missing"
        styles = {style_for(f"ecmp-node{i}") for i in range(1, 17)}
        assert len(styles) == 16
        assert {c for c, _ in styles} == set(PALETTE)
        assert {g for _, g in styles} == set(GLYPHS)
        # the same node has the same colour whatever order the nodes come in
        assert style_for("ecmp-node9") != style_for("ecmp-node1")
        assert style_for("ecmp-node9") == style_for("other-node9")


async def test_the_empty_state_says_what_to_do_next(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        app.wall = lambda: WALL
        app.show_status(DeploymentStatus("lab", None, [], None, updated=WALL))
        app.publish()
        await pilot.pause()
        assert (
            "Nothing is provisioned yet: press p for the Provision screen, then P to "
            "provision." in drawn(app)
        )
        await pilot.press("b")
        await pilot.pause()
        assert "Nothing is provisioned yet" in drawn(app)


async def test_destructive_keys_ask_and_enter_or_escape_answer(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    ran: list[tuple[str, str]] = []
    async with app.run_test(size=(120, 40)) as pilot:
        prime(app)
        app.publish()
        await pilot.pause()

        async def act(node: str, action: Action, on_effect: Any = None) -> str:
            ran.append((node, action.name))
            return "done"

        app.cockpit.act = act  # type: ignore[method-assign,assignment]
        table = app.screen.query_one("#nodes", DataTable)
        table.move_cursor(row=1)
        await pilot.press("i")  # isolate ecmp-node2: asks
        await pilot.pause()
        assert type(app.screen).__name__ == "ConfirmScreen"
        assert "Isolate ecmp-node2?" in drawn(app)
        await pilot.press("escape")
        await pilot.pause()
        assert ran == []
        await pilot.press("w")
        await pilot.pause()
        await pilot.press("enter")  # the yes button has the focus
        await until(pilot, lambda: ran == [("ecmp-node2", "withdraw")], "the withdraw")
        await pilot.press("a")  # announce puts back: no question
        await until(pilot, lambda: ran[-1] == ("ecmp-node2", "announce"), "the announce")
        await pilot.press("z")
        await pilot.pause()
        assert "-5 min" in drawn(app)


async def test_the_rate_field_shows_the_rate_in_force(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        prime(app)
        await pilot.pause()
        field = app.screen.query_one("#rate", Input)
        field.focus()
        field.value = "2500"
        await pilot.press("enter")
        await until(pilot, lambda: field.value == "1000", "the rate in force shown")
        assert app.rate == 1000


def test_a_start_rate_out_of_range_is_refused(tmp_path: Path) -> None:
    from conftest import run_cli

    proc = run_cli("--rate", "5000", "--lab", "ecmpz")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "ecmptui: error: --rate 5000: the dashboard probes at 1 to 1000 requests/s"
    )


async def test_the_bgp_log_runs_forward_in_time_and_has_no_placeholders(tmp_path: Path) -> None:
    """Regression (issue 22): the BGP log started with placeholder entries (nodes still
    `waiting` for their first answer) and ran backwards in time when BIRD's own time for a
    change was older than a line already shown."""
    from dataclasses import replace

    from textual.widgets import RichLog

    from ecmptui.deployment.status import NodeStatus

    app = make_app(tmp_path, "bgp")
    async with app.run_test(size=(120, 40)) as pilot:
        waiting = DeploymentStatus(
            "lab",
            "203.0.113.10",
            [NodeStatus("ecmp-node1", 1, "d1", "198.18.100.11", bgp_state="waiting")],
            updated=WALL - 30,
        )
        app.show_status(waiting)
        app.show_status(
            replace(waiting, nodes=[replace(waiting.nodes[0], bgp_state="Established")])
        )
        app.log_event(WALL - 10, "later")
        app.publish()
        await pilot.pause()
        app.log_event(WALL - 20, "earlier, learned late")
        app.publish()
        await pilot.pause()
        lines = [str(s.text) for s in app.screen.query_one("#bgp-events", RichLog).lines]
    text = "\n".join(lines)
    assert "waiting" not in text and "ecmp-node1: BIRD Established" in text
    assert text.index("earlier, learned late") < text.index("later")
    stamps = [ln.split(" ")[0] for ln in lines if ln[:2].isdigit()]
    assert stamps == sorted(stamps)


async def test_the_first_switch_to_the_bgp_screen_draws_the_grid_and_focus_is_on_the_nodes(
    tmp_path: Path,
) -> None:
    """Regression (issue 22): the node x router grid had zero height on the first switch to
    the BGP screen, and on start the Traffic screen's node table had no focus (arrows did
    nothing)."""
    from textual.widgets import DataTable

    app = make_app(tmp_path, "traffic")
    async with app.run_test(size=(120, 40)) as pilot:
        prime(app)
        await pilot.pause()
        assert app.focused is app.screen.query_one("#nodes", DataTable)
        await pilot.press("down")
        screen = app.screen
        assert isinstance(screen, TrafficScreen)
        assert screen.selected_node() == "ecmp-node2"
        await pilot.press("b")
        await pilot.pause()
        grid = app.screen.query_one("#bgp-grid", DataTable)
        assert grid.row_count == 2 and grid.size.height == 3


async def test_esc_in_a_provision_field_gives_the_keys_back(tmp_path: Path) -> None:
    """Regression (issue 22): a focused field on the Provision screen swallowed Esc, q, ?
    and every screen key."""
    from textual.widgets import Input

    app = make_app(tmp_path, "provision")
    async with app.run_test(size=(120, 40)) as pilot:
        prime(app)
        await pilot.pause()
        assert not isinstance(app.focused, Input)  # the keys work from the start
        await pilot.click("#in-metro")
        assert isinstance(app.focused, Input)
        await pilot.press("escape")
        assert not isinstance(app.focused, Input)
        await pilot.press("b")
        await pilot.pause()
        assert app.current_mode == "bgp"


async def test_reports_and_timelines_claim_no_more_than_was_seen(tmp_path: Path) -> None:
    """Regression (issue 22): a static drill report said "FIB updated: unchanged" where no
    FIB can be seen; a health-check withdraw was measured from the withdraw, not from when
    the service began failing, so the refused requests before it were not counted."""
    from dataclasses import replace

    from ecmptui.deployment.status import HealthStatus
    from ecmptui.traffic.drill import ScenarioResult, report_markdown

    row = ScenarioResult(
        "withdraw", False, None, "n2", 3.0, 3.0, 40.0, {}, {"n1": 1}, {"n1": 1}, True, 100
    )
    assert "| n/a |" in report_markdown([row], 200, "static")
    assert "| unchanged |" in report_markdown([row], 200, "lab")

    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)):
        app.clock, app.wall = (lambda: 1000.0), (lambda: WALL)
        up = HealthStatus("up", interval_ms=100, fall=3)
        base = many_nodes(2)
        first = replace(base, nodes=[base.nodes[0], replace(base.nodes[1], health=up)])
        app.show_status(first)
        down = replace(up, state="down", since=WALL - 1.0)
        app.show_status(
            replace(first, nodes=[first.nodes[0], replace(first.nodes[1], health=down)])
        )
        [rec] = [r for r in app.traffic.timeline if r.source == "health"]
    assert rec.action == "withdraw" and rec.t == pytest.approx(1000.0 - 1.0 - 0.3)


async def test_the_lab_going_down_keeps_the_chart_and_coming_back_renews_the_project(
    tmp_path: Path,
) -> None:
    """Regression (issue 22): the chart's history was wiped when the lab went down, and the
    Provision screen kept an old project id after the lab was rebuilt."""
    from ecmptui.screens.messages import StatusReady

    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        prime(app)
        app.live, app.prober.eip = True, "203.0.113.10"  # as if it were probing
        before = app.traffic.recorded_s(app.clock())
        app.project_label = "an-old-project"
        app.post_message(StatusReady(None, "the lab is down", lab_down=True))
        await until(pilot, lambda: app.lab_down, "the lab seen down")
        assert app.traffic.recorded_s(app.clock()) == before > 0
        assert app.probe_state == "prober stopped: the lab is down"
        app.live = False  # no prober for the lab that is back (fixed data)
        app.post_message(StatusReady(app.status or many_nodes(2)))
        await until(pilot, lambda: not app.lab_down, "the lab seen back")
        assert app.project_label == app.cockpit.project_label() != "an-old-project"


def test_the_provision_checklist_names_failed_devices() -> None:
    """Regression (issue 22): a device whose machine never came up left "✓ servers created
    and active" on the Provision screen."""
    from dataclasses import replace

    from ecmptui.screens.provision import deployment_steps

    st = many_nodes(2)
    st = replace(
        st,
        nodes=[st.nodes[0], replace(st.nodes[1], device_state="failed", bgp_state="device failed")],
    )
    states, details = deployment_steps(st)
    assert states["devices"] == "failed"
    assert details["devices"] == "failed: ecmp-node2 (provision replaces them)"


async def test_a_prober_that_failed_to_start_is_tried_again(tmp_path: Path) -> None:
    """Regression (issue 22): the dashboard's prober failed once after provisioning from the
    UI and stayed at 0 req/s until paused and resumed."""
    from ecmptui.errors import EcmpError

    app = make_app(tmp_path)
    calls = []

    async def failing_probe(*args: Any, **kwargs: Any) -> Never:
        calls.append(1)
        raise EcmpError("unexpected response (TypeError: 'NoneType' object is not subscriptable)")

    async with app.run_test(size=(120, 40)) as pilot:
        app.cockpit.probe = failing_probe  # type: ignore[method-assign]
        app.live, app.prober.eip = True, "203.0.113.10"
        app.prober.start()
        await until(pilot, lambda: "retrying" in app.probe_state, "the failure said")
        assert len(calls) == 1
        await until(pilot, lambda: len(calls) == 2, "a second try by itself", timeout=5)
        app.live = False


async def test_the_chart_draws_columns_its_legend_does_not_cover() -> None:
    """A column can hold answers of a backend the legend does not list yet (the family was
    just switched) and averages whose float sum differs in its last bits from the stack's:
    the chart draws them in its last band instead of ending the app (CI saw StopIteration)."""
    from collections import Counter

    from textual.app import App, ComposeResult

    from ecmptui.screens.chart import TrafficChart

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield TrafficChart(id="c")

    app = One()
    async with app.run_test(size=(40, 12)) as pilot:
        chart = app.query_one(TrafficChart)
        # 3 seconds in 2 columns: averages of thirds, whose sums are not exact in floats
        thirds = [(Counter({"a": 1, "b": 1, "ghost": 1}), 1)] * 2 + [(Counter({"a": 2}), 0)]
        chart.set_data(thirds * 7, ["a", "b"])
        await pilot.pause()
        text = chart.render().plain
        assert text.count("│") >= 5 and any(g in text for g in GLYPHS)
