"""Traffic: who answers the EIP, second by second, and buttons to take nodes out."""

from __future__ import annotations

import time

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Static

from ecmptui.actions import Action

from .base import DashboardScreen
from .chart import ERROR_COLOUR, TrafficChart, colour_for


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


class ActionButton(Button):
    """A node action's button; it knows which action it runs."""

    def __init__(self, action: Action) -> None:
        assert action.button is not None
        super().__init__(action.button, id=f"act-{action.name}", classes="act")
        self.action_name = action.name


class NodeRow(Horizontal):
    """A node's name and its action buttons."""

    def __init__(self, name: str, actions: list[Action], read_only: bool) -> None:
        super().__init__(classes="node-row")
        self.node_name, self.actions, self.read_only = name, actions, read_only

    def compose(self) -> ComposeResult:
        yield Label(self.node_name, classes="node-name")
        for action in self.actions:
            if action.button is None:
                continue
            b = ActionButton(action)
            if self.read_only:
                b.add_class("-ro")
            yield b


class TrafficScreen(DashboardScreen):
    BINDINGS = [Binding("space", "toggle_pause", "Pause"),
                Binding("plus", "rate(2)", "Rate x2", key_display="+", show=False),
                Binding("minus", "rate(0.5)", "Rate /2", key_display="-", show=False)]

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with Horizontal(id="traffic-top"):
            yield TrafficChart(id="chart")
            with Vertical(id="traffic-side"):
                yield Static("", id="legend")
                yield Static("", id="stats")
        with Horizontal(id="traffic-controls"):
            yield Label("rate", classes="ctl-label")
            yield Input(str(int(self.dash.rate)), id="rate", type="number")
            yield Button("Pause", id="pause", classes="act")
            yield Label("", id="probe-state")
        yield VerticalScroll(id="node-rows")
        yield DataTable(id="timeline", cursor_type="none")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        tl = self.query_one("#timeline", DataTable)
        for key, label in [("time", "time"), ("node", "node"), ("action", "action"),
                           ("by", "by"), ("result", "result")]:
            tl.add_column(label, key=key)
        self._rows_for: list[str] = []
        self._timeline_shown: dict[int, str] = {}
        self._shown: dict[str, object] = {}
        self.refresh_view()

    def on_screen_resume(self) -> None:
        self.refresh_view()

    # -- view ------------------------------------------------------------------------------
    def refresh_view(self) -> None:
        if not self.is_mounted:
            return
        app = self.dash
        model = app.traffic
        now = app.clock()
        self.query_one("#chart", TrafficChart).set_data(model.buckets(now), model.backends)
        stats = model.stats(now=now)
        legend = Text()
        for i, b in enumerate(model.backends):
            share = stats["shares"].get(b, 0.0)
            legend.append("██ ", style=colour_for(i))
            legend.append(f"{b:<12} {share * 100:5.1f}%\n")
        legend.append("██ ", style=ERROR_COLOUR)
        legend.append("failed")
        errors = ", ".join(f"{k} {v}" for k, v in sorted(stats["errors"].items())) or "none"
        self._set("#legend", legend)
        self._set("#stats", f"[b]{stats['rate']:.0f} [/]req/s\nerrors: {errors}\n"
                            f"p50 {_fmt(stats['p50'])} ms  p99 {_fmt(stats['p99'])} ms")
        self._set("#probe-state", app.probe_state)
        pause = "Resume" if app.paused else "Pause"
        if str(self.query_one("#pause", Button).label) != pause:
            self.query_one("#pause", Button).label = pause
        self._sync_node_rows()
        self._sync_timeline()

    def _set(self, selector: str, content) -> None:
        """Update a Static/Label only when its content changed (updates cost a repaint)."""
        if self._shown.get(selector) != content:
            self._shown[selector] = content
            self.query_one(selector, Static).update(content)

    def _sync_node_rows(self) -> None:
        names = [n.name for n in self.dash.status.nodes] if self.dash.status else []
        if names == self._rows_for:
            return
        box = self.query_one("#node-rows", VerticalScroll)
        box.remove_children()
        actions = self.dash.cockpit.actions()
        box.mount_all([NodeRow(n, actions, self.dash.read_only) for n in names])
        self._rows_for = names

    def _sync_timeline(self) -> None:
        tl = self.query_one("#timeline", DataTable)
        for i, rec in enumerate(self.dash.traffic.timeline):
            summary = rec.summary() if rec.outcome == "done" or not rec.outcome.startswith(
                "running") else "…"
            if i not in self._timeline_shown:
                stamp = time.strftime("%H:%M:%S", time.localtime(
                    self.dash.wall() - (self.dash.clock() - rec.t)))
                tl.add_row(stamp, rec.node, rec.action, rec.by or rec.source, summary, key=str(i))
                tl.scroll_end(animate=False)
            elif self._timeline_shown[i] != summary:
                tl.update_cell(str(i), "result", summary)
            self._timeline_shown[i] = summary

    # -- input -----------------------------------------------------------------------------
    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "pause":
            self.dash.toggle_pause()
            return
        row = event.button.parent
        if isinstance(event.button, ActionButton) and isinstance(row, NodeRow):
            self.dash.node_action(row.node_name, event.button.action_name)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "rate":
            try:
                self.dash.set_rate(float(event.value))
            except ValueError:
                self.dash.notify(f"not a rate: {event.value!r}", severity="error")

    def action_toggle_pause(self) -> None:
        self.dash.toggle_pause()

    def action_rate(self, factor: float) -> None:
        self.dash.set_rate(self.dash.rate * factor)
        self.query_one("#rate", Input).value = str(int(self.dash.rate))
