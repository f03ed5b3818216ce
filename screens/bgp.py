"""BGP: every node's session as its routing daemon (BIRD or FRR) sees it, the API's view,
the router's next hops and a timestamped log of every change."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Footer, Header, Label, RichLog, Static

from ecmptui.actions import ROUTER_ACTIONS, RouterAction
from ecmptui.deployment.status import DeploymentStatus
from ecmptui.display import (
    NODE_COLUMNS,
    grid_cells,
    grid_columns,
    node_cells,
    router_lines,
    stamp,
)
from ecmptui.jsonish import JsonObject

from .base import DashboardScreen, log_line
from .messages import RouterActionRequested
from .traffic import age_text
from .view import DashboardView


class RouterButton(Button):
    """A core router action's button."""

    def __init__(self, router: str, action: RouterAction) -> None:
        super().__init__(action.button, id=f"rt-{router}-{action.name}", classes="act")
        self.router, self.action_name = router, action.name
        self.can_focus = False  # mouse or palette: no Tab stop per button


class RouterRow(Horizontal):
    """A core router's name and its action buttons (lab only)."""

    def __init__(self, router: str, read_only: bool) -> None:
        super().__init__(classes="router-row")
        self.router, self.read_only = router, read_only

    def compose(self) -> ComposeResult:
        yield Label(self.router, classes="node-name")
        for action in ROUTER_ACTIONS.values():
            b = RouterButton(self.router, action)
            if self.read_only:
                b.add_class("-ro")
            yield b


# the age beside the state it dates, the long error last (80 columns cut from the right)
BGP_COLUMNS = [NODE_COLUMNS[0], NODE_COLUMNS[1], ("age", "age"), *NODE_COLUMNS[2:]]


class BgpScreen(DashboardScreen):
    AUTO_FOCUS = "#bgp-nodes"

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield DataTable(id="bgp-nodes", cursor_type="row", zebra_stripes=True)
        yield Static("", id="bgp-router")
        yield DataTable(id="bgp-grid", cursor_type="none", zebra_stripes=True)
        yield Vertical(id="router-rows")
        yield RichLog(id="bgp-events", markup=True, wrap=True, max_lines=1000)
        yield Static("", id="bgp-age", classes="status-line")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one("#bgp-nodes", DataTable)
        for key, label in BGP_COLUMNS:
            table.add_column(label, key=key)
        self._cells: dict[str, dict[str, str]] = {}
        self._grid: dict[str, dict[str, str]] = {}
        self._columns: list[tuple[str, str]] = []
        self._events_shown = 0
        self._last_shown: float | None = None
        self.redraw()

    def shows_change(self, old: DashboardView, new: DashboardView) -> bool:
        return old.beside_traffic() != new.beside_traffic()  # not the traffic's samples

    def redraw(self) -> None:
        """Bring the table up to the latest status, touching only changed cells."""
        if not self.is_mounted:
            return
        st = self.view.status
        table = self.query_one("#bgp-nodes", DataTable)
        router = self.query_one("#bgp-router", Static)
        empty = self.view.empty
        if st is None or empty:
            router.update(empty)
        if st is not None:
            seen = set()
            wall = self.view.wall
            for n in st.nodes:
                cells: JsonObject = dict(node_cells(n))
                cells["age"] = age_text(None if n.updated is None else wall - n.updated)
                seen.add(n.name)
                old = self._cells.get(n.name)
                if old is None:
                    table.add_row(*(cells[k] for k, _ in BGP_COLUMNS), key=n.name)
                else:
                    for key, value in cells.items():
                        if old.get(key) != value:
                            table.update_cell(n.name, key, value, update_width=True)
                self._cells[n.name] = cells
            for gone in set(self._cells) - seen:
                table.remove_row(gone)
                del self._cells[gone]
            if not empty:
                router.update("\n".join(router_lines(st)))
            self._refresh_grid(st)
        table.display = bool(st and st.nodes)
        self._show_events()
        self.query_one("#bgp-age", Static).update(self.view.status_line)

    def _show_events(self) -> None:
        """Append what is new; when an entry landed before one already shown (the log is
        kept in time order), write the log again."""
        log = self.query_one("#bgp-events", RichLog)
        events = self.view.events
        new = [e for e in events if e.seq > self._events_shown]
        if not new:
            return
        if self._last_shown is not None and min(e.at for e in new) < self._last_shown:
            log.clear()
            new = list(events)
        for entry in new:
            log.write(log_line(f"[dim]{stamp(entry.at)} [/]{entry.text}"))
        self._events_shown = max(e.seq for e in events)
        self._last_shown = events[-1].at

    def _refresh_grid(self, st: DeploymentStatus) -> None:
        """The node x core router grid: each node's session to each router."""
        grid = self.query_one("#bgp-grid", DataTable)
        columns = grid_columns(st)
        keys = [k for k, _ in columns]
        reshaped, rows_before = columns != self._columns, len(self._grid)
        if reshaped:
            if grid.columns:
                grid.clear(columns=True)
            self._grid = {}
            routers_changed = (
                [c.name for c in st.router.cores] != self._router_names(self._columns)
                if st.router
                else bool(self._columns)
            )
            self._columns = columns
            if columns:
                grid.add_column("node × router", key="node")
                for key, label in columns:
                    grid.add_column(label, key=key)
            if routers_changed and st.router:
                rows = self.query_one("#router-rows", Vertical)
                rows.remove_children()
                rows.mount_all([RouterRow(c.name, self.view.read_only) for c in st.router.cores])
        grid.display = bool(columns)
        if not columns:
            return
        seen = set()
        for n in st.nodes:
            cells = grid_cells(n, st)
            seen.add(n.name)
            old = self._grid.get(n.name)
            if old is None:
                grid.add_row(n.name, *(cells[k] for k in keys), key=n.name)
            else:
                for k in keys:
                    if old.get(k) != cells[k]:
                        grid.update_cell(n.name, k, cells[k], update_width=True)
            self._grid[n.name] = cells
        for gone in set(self._grid) - seen:
            grid.remove_row(gone)
            del self._grid[gone]
        if reshaped or len(self._grid) != rows_before:
            # its height set, not auto: an auto-height table whose rows came after its
            # first layout kept height 0 (nothing drawn on the first switch to this screen)
            grid.styles.height = grid.row_count + 1

    @staticmethod
    def _router_names(columns: list[tuple[str, str]]) -> list[str]:
        """The routers of a grid's columns, in order (a dual stack has two per router)."""
        return list(dict.fromkeys(k.split(" ")[0] for k, _ in columns))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if isinstance(event.button, RouterButton):
            self.post_message(RouterActionRequested(event.button.router, event.button.action_name))
