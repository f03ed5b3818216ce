"""BGP: every node's session as BIRD sees it, the API's view, the router's next hops and a
timestamped log of every change."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import DataTable, Footer, Header, RichLog, Static

from ecmptui.display import NODE_COLUMNS, node_cells, router_line

from .base import DashboardScreen


class BgpScreen(DashboardScreen):
    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield DataTable(id="bgp-nodes", cursor_type="row", zebra_stripes=True)
        yield Static("", id="bgp-router")
        yield RichLog(id="bgp-events", markup=True, wrap=True, max_lines=1000)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one("#bgp-nodes", DataTable)
        for key, label in NODE_COLUMNS:
            table.add_column(label, key=key)
        self._cells: dict[str, dict[str, str]] = {}
        self._events_shown = 0
        self.refresh_view()

    def on_screen_resume(self) -> None:
        self.refresh_view()

    def refresh_view(self) -> None:
        """Bring the table up to the app's latest status, touching only changed cells."""
        if not self.is_mounted:
            return
        st = self.dash.status
        table = self.query_one("#bgp-nodes", DataTable)
        router = self.query_one("#bgp-router", Static)
        if st is None:
            router.update(self.dash.status_error or "waiting for the first status…")
        else:
            seen = set()
            for n in st.nodes:
                cells = node_cells(n)
                seen.add(n.name)
                old = self._cells.get(n.name)
                if old is None:
                    table.add_row(*(cells[k] for k, _ in NODE_COLUMNS), key=n.name)
                else:
                    for key, value in cells.items():
                        if old.get(key) != value:
                            table.update_cell(n.name, key, value)
                self._cells[n.name] = cells
            for gone in set(self._cells) - seen:
                table.remove_row(gone)
                del self._cells[gone]
            router.update(router_line(st.eip, st.router))
        log = self.query_one("#bgp-events", RichLog)
        for line in self.dash.events[self._events_shown:]:
            log.write(line)
        self._events_shown = len(self.dash.events)
