"""Traffic: who answers the EIP, second by second; a table of the nodes whose keys act on
the selected one; the timeline of actions with what each cost."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Static

from ecmptui.actions import ACTIONS
from ecmptui.display import daemon_label, traffic_state
from ecmptui.traffic.model import BackendStats, TrafficStats

from .base import DashboardScreen
from .chart import ERROR_COLOUR, ERROR_GLYPH, ZOOMS, TrafficChart, swatch
from .messages import (
    DrainRequested,
    FamilyToggled,
    NodeActionRequested,
    PauseToggled,
    RateRequested,
)

NODE_TABLE = [
    ("swatch", ""),
    ("node", "node"),
    ("daemon", "daemon"),
    ("state", "state"),
    ("share", "share"),
    ("rate", "ans/s"),
    ("p50", "p50 ms"),
    ("p99", "p99 ms"),
    ("bfd", "BFD"),
    ("hold", "hold"),
    ("age", "age"),
]
STALE_S = 3.0  # status older than this is highlighted
NO_ANSWERS = BackendStats(0.0, None, None)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def age_text(age: float | None) -> Text:
    """How old a status is: highlighted once it is older than STALE_S."""
    if age is None:
        return Text("-", style="dim")
    return Text(f"{age:.1f}s", style="bold red" if age > STALE_S else "dim")


class TrafficScreen(DashboardScreen):
    AUTO_FOCUS = "#nodes"  # arrows select a node at once; the action keys act on it
    # the Footer has room for the common ones at 80 columns; `?` lists every key
    BINDINGS = [
        *[
            Binding(
                a.key,
                f"node_action('{a.name}')",
                a.button or a.title.split()[0],
                show=a.footer,
            )
            for a in ACTIONS.values()
            if a.key
        ],
        Binding("d", "drain", "Drain", show=False),
        Binding("space", "toggle_pause", "Pause", show=False),
        Binding("6", "toggle_family", "IPv4/IPv6", show=False),
        Binding("z", "zoom", "Zoom", show=False),  # `?` lists it; 80 columns keep Help/Quit
        Binding("left_square_bracket", "scroll_chart(1)", "Back", key_display="[", show=False),
        Binding("right_square_bracket", "scroll_chart(-1)", "Fwd", key_display="]", show=False),
        Binding("plus", "rate(2)", "Rate x2", key_display="+", show=False),
        Binding("minus", "rate(0.5)", "Rate /2", key_display="-", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with Horizontal(id="traffic-top"):
            yield TrafficChart(id="chart")
            with Vertical(id="traffic-side"):
                yield Static("", id="stats")
        with Horizontal(id="traffic-controls"):
            yield Label("rate", classes="ctl-label")
            yield Input(str(int(self.view.rate)), id="rate", type="number")
            yield Button("Pause", id="pause", classes="act")
            yield Label("", id="probe-state")
        yield Static("", id="traffic-empty", classes="empty")
        yield DataTable(id="nodes", cursor_type="row", zebra_stripes=True)
        yield DataTable(id="timeline", cursor_type="none")
        yield Static("", id="traffic-age", classes="status-line")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        nodes = self.query_one("#nodes", DataTable)
        for key, label in NODE_TABLE:
            nodes.add_column(label, key=key)
        tl = self.query_one("#timeline", DataTable)
        for key, label in [
            ("time", "time"),
            ("node", "node"),
            ("action", "action"),
            ("by", "by"),
            ("result", "result"),
        ]:
            tl.add_column(label, key=key)
        self.query_one("#pause", Button).can_focus = False
        self._rows_for: list[str] = []
        self._node_cells: dict[str, dict] = {}
        self._timeline_shown: dict[int, str] = {}
        self._shown: dict[str, object] = {}
        self._rate_shown = self.view.rate
        self.zoom = 0  # index into ZOOMS
        self.back_s = 0  # how far back the chart looks
        self.redraw()

    # -- view ------------------------------------------------------------------------------
    def redraw(self) -> None:
        if not self.is_mounted:
            return
        app = self.view
        model = app.traffic
        now = app.now
        span = ZOOMS[self.zoom]
        self.back_s = min(self.back_s, max(0, model.recorded_s(now) - span))
        left = int(now) - self.back_s - span
        marks = [
            (rec.t - left, rec.action) for rec in model.timeline if left <= rec.t < left + span
        ]
        caption = f"-{span // 60} min" + (f" (scrolled back {self.back_s}s)" if self.back_s else "")
        self.query_one("#chart", TrafficChart).set_data(
            model.buckets(now, span, self.back_s), model.backends, marks, caption
        )
        stats = model.stats(now=now)
        errors = ", ".join(f"{k} {v}" for k, v in sorted(stats.errors.items())) or "none"
        self._set(
            "#stats",
            Text.assemble(
                (f"{stats.rate:.0f}", "bold"),
                " req/s\n",
                "errors: ",
                errors,
                "\n",
                f"p50 {_fmt(stats.p50)} ms\np99 {_fmt(stats.p99)} ms\n",
                (ERROR_GLYPH * 2, ERROR_COLOUR),
                " failed",
            ),
        )
        self._set("#probe-state", app.probe_state)
        if self._rate_shown != app.rate:  # the rate in force changed: show it
            self._rate_shown = app.rate
            self.query_one("#rate", Input).value = str(int(app.rate))
        pause = "Resume" if app.paused else "Pause"
        if str(self.query_one("#pause", Button).label) != pause:
            self.query_one("#pause", Button).label = pause
        self._set("#traffic-empty", app.empty)
        self.query_one("#traffic-empty").display = bool(app.empty)
        self._sync_nodes(stats)
        self._sync_timeline()
        self._set("#traffic-age", app.status_line)

    def _set(self, selector: str, content: Any) -> None:
        """Update a Static/Label only when its content changed (updates cost a repaint)."""
        if self._shown.get(selector) != content:
            self._shown[selector] = content
            self.query_one(selector, Static).update(content)

    def _sync_nodes(self, stats: TrafficStats) -> None:
        st = self.view.status
        table = self.query_one("#nodes", DataTable)
        names = [n.name for n in st.nodes] if st else []
        if names != self._rows_for:
            cursor = table.cursor_row
            table.clear()
            self._node_cells = {}
            for name in names:
                table.add_row(*([""] * len(NODE_TABLE)), key=name)
            self._rows_for = names
            table.move_cursor(row=min(cursor, max(0, len(names) - 1)))
        table.display = bool(names)
        if not st:
            return
        wall = self.view.wall
        per = stats.per_backend
        for n in st.nodes:
            mine = per.get(n.name, NO_ANSWERS)
            age = None if n.updated is None else max(0.0, wall - n.updated)
            hold = "-"
            if n.hold_timer and n.answering:
                try:
                    left = float(n.hold_timer.split("/")[0]) - (age or 0.0)
                    hold = f"{max(0.0, left):.1f}/{n.hold_timer.split('/')[-1]}"
                except ValueError:
                    hold = n.hold_timer
            share = stats.shares.get(n.name)
            cells = {
                "swatch": swatch(n.name),
                "node": n.name,
                "daemon": daemon_label(n),
                "state": traffic_state(n),
                "share": "-" if share is None else f"{share * 100:.1f}%",
                "rate": f"{mine.rate:.0f}",
                "p50": _fmt(mine.p50),
                "p99": _fmt(mine.p99),
                "bfd": n.bfd or "-",
                "hold": hold,
                "age": age_text(age),
            }
            old = self._node_cells.get(n.name, {})
            for key, value in cells.items():
                if old.get(key) != value:
                    table.update_cell(n.name, key, value, update_width=True)
            self._node_cells[n.name] = cells

    def _sync_timeline(self) -> None:
        tl = self.query_one("#timeline", DataTable)
        for rec in self.view.traffic.timeline:
            summary = (
                rec.summary()
                if rec.outcome == "done" or not rec.outcome.startswith("running")
                else "…"
            )
            key = str(rec.seq)
            if rec.seq not in self._timeline_shown:
                stamp = time.strftime("%H:%M:%S", time.localtime(self.view.ts(rec.t)))
                tl.add_row(stamp, rec.node, rec.action, rec.by or rec.source, summary, key=key)
                tl.scroll_end(animate=False)
            elif self._timeline_shown[rec.seq] != summary:
                tl.update_cell(key, "result", summary, update_width=True)
            self._timeline_shown[rec.seq] = summary
        kept = {rec.seq for rec in self.view.traffic.timeline}
        for seq in [s for s in self._timeline_shown if s not in kept]:
            tl.remove_row(str(seq))
            del self._timeline_shown[seq]

    def selected_node(self) -> str | None:
        table = self.query_one("#nodes", DataTable)
        if not self._rows_for or table.cursor_row < 0:
            return None
        return self._rows_for[min(table.cursor_row, len(self._rows_for) - 1)]

    # -- input -----------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("node_action", "drain"):
            if self.view.read_only:  # a view that may change nothing shows no action keys
                return False
            if action == "drain":
                return self.view.routers
            return parameters[0] in self.view.offered  # not on this target: not in the Footer
        return True

    def refused_key(self, key: str) -> str | None:
        action = next((a for a in ACTIONS.values() if a.key == key), None)
        name = action.name if action is not None else ("drain" if key == "d" else None)
        node = self.selected_node()
        return None if name is None or node is None else f"{name} {node}"

    def action_node_action(self, action: str) -> None:
        node = self.selected_node()
        if node is None:
            self.notify("no node selected (nothing is provisioned yet)", severity="warning")
            return
        self.post_message(NodeActionRequested(node, action))

    def action_drain(self) -> None:
        node = self.selected_node()
        if node is not None:
            self.post_message(DrainRequested(node))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "pause":
            self.post_message(PauseToggled())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "rate":
            try:
                self.post_message(RateRequested(float(event.value)))
            except ValueError:
                self.notify(f"not a rate: {event.value!r}", severity="error")
            event.input.value = str(int(self.view.rate))  # until the new rate is in force
            self.query_one("#nodes", DataTable).focus()

    def action_toggle_pause(self) -> None:
        self.post_message(PauseToggled())

    def action_toggle_family(self) -> None:
        self.post_message(FamilyToggled())

    def action_rate(self, factor: float) -> None:
        self.post_message(RateRequested(self.view.rate * factor))

    def action_zoom(self) -> None:
        self.zoom = (self.zoom + 1) % len(ZOOMS)
        self.redraw()

    def action_scroll_chart(self, direction: int) -> None:
        span = ZOOMS[self.zoom]
        self.back_s = max(0, self.back_s + direction * span // 2)
        self.redraw()
