"""Provision: the guide's steps with live state, per-device progress and a log."""

from __future__ import annotations

from typing import Literal

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, RichLog, Switch

from ecmptui.deployment.steps import STEPS, StepEvent

from .base import DashboardScreen

ICONS = {"pending": "[dim]·[/]", "running": "[yellow]…[/]", "done": "[green]✓[/]",
         "failed": "[red]✗[/]"}


class ProvisionScreen(DashboardScreen):
    """Inputs on the left, the checklist and devices on the right, the log below."""

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with Horizontal(id="prov-top"):
            with Vertical(id="prov-form"):
                yield Label("", id="prov-target")
                fields: list[tuple[str, str, Literal["integer", "text"]]] = [
                    ("nodes", "nodes", "integer"), ("metro", "metro", "text"),
                    ("plan", "plan", "text"), ("os", "OS", "text")]
                for key, label, kind in fields:
                    with Horizontal(classes="form-row"):
                        yield Label(label, classes="form-label")
                        yield Input(id=f"in-{key}", type=kind)
                with Horizontal(classes="form-row"):
                    yield Label("BFD", classes="form-label")
                    yield Switch(id="in-bfd")
                with Horizontal(classes="form-row"):
                    yield Button("Provision", variant="primary", id="btn-provision",
                                 classes="act")
                    yield Button("Deprovision", variant="error", id="btn-deprovision",
                                 classes="act")
            with Vertical(id="prov-right"):
                yield DataTable(id="steps", cursor_type="none", show_header=False)
                yield DataTable(id="devices", cursor_type="none")
        yield RichLog(id="prov-log", markup=True, wrap=True, max_lines=500)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        p = self.dash.cockpit.settings.provision
        self.query_one("#in-nodes", Input).value = str(p.nodes)
        self.query_one("#in-metro", Input).value = p.metro
        self.query_one("#in-plan", Input).value = p.plan
        self.query_one("#in-os", Input).value = p.operating_system
        self.query_one("#in-bfd", Switch).value = p.bfd
        steps = self.query_one("#steps", DataTable)
        steps.add_column("", key="icon", width=1)
        steps.add_column("step", key="step")
        steps.add_column("detail", key="detail")
        for key, title in STEPS:
            steps.add_row(ICONS["pending"], title, "", key=key)
        dev = self.query_one("#devices", DataTable)
        dev.add_column("node", key="node")
        dev.add_column("", key="icon", width=1)
        dev.add_column("progress", key="detail")
        if not self.dash.cockpit.provisions:
            # nothing to provision: the screen lists the configured nodes and checks them
            self.query_one("#btn-provision", Button).label = "Check nodes"
            self.query_one("#btn-deprovision", Button).display = False
            self.query_one("#steps", DataTable).display = False
            for row in self.query(".form-row"):
                if row.query("Input, Switch"):
                    row.display = False
        elif self.dash.read_only:
            for b in self.query(Button):
                b.add_class("-ro")
        self.refresh_view()

    def show_checks(self, results: list[dict]) -> None:
        """Static target: one row per node with what `ecmptui check` found."""
        dev = self.query_one("#devices", DataTable)
        log = self.query_one("#prov-log", RichLog)
        dev.clear()
        for r in results:
            detail = ("BIRD running, " + r["sessions"] + ", EIP on lo, nginx answering"
                      if r["ok"] else "; ".join(r["problems"]))
            dev.add_row(r["name"], ICONS["done" if r["ok"] else "failed"], detail, key=r["name"])
            log.write(f"[{'green' if r['ok'] else 'red'}]check [/]{r['name']} "
                      f"({r['host']}): {detail}")

    def refresh_view(self) -> None:
        self.query_one("#prov-target", Label).update(
            f"[b]{self.dash.cockpit.target_label()}[/]\nproject {self.dash.project_label[:18]}")

    def form_values(self) -> dict:
        nodes = self.query_one("#in-nodes", Input).value.strip()
        return {"nodes": int(nodes) if nodes.lstrip("-").isdigit() else -1,
                "metro": self.query_one("#in-metro", Input).value.strip(),
                "plan": self.query_one("#in-plan", Input).value.strip(),
                "operating_system": self.query_one("#in-os", Input).value.strip(),
                "bfd": self.query_one("#in-bfd", Switch).value}

    def reset_steps(self, keys: list[str] | None = None) -> None:
        steps = self.query_one("#steps", DataTable)
        for key, _ in STEPS:
            if keys is None or key in keys:
                steps.update_cell(key, "icon", ICONS["pending"])
                steps.update_cell(key, "detail", "")
        self.query_one("#devices", DataTable).clear()

    def apply_event(self, ev: StepEvent) -> None:
        steps = self.query_one("#steps", DataTable)
        log = self.query_one("#prov-log", RichLog)
        if ev.node:
            dev = self.query_one("#devices", DataTable)
            if ev.node not in dev.rows:
                dev.add_row(ev.node, ICONS[ev.state], ev.detail, key=ev.node)
            else:
                dev.update_cell(ev.node, "icon", ICONS[ev.state])
                dev.update_cell(ev.node, "detail", ev.detail)
        elif ev.step in steps.rows:
            steps.update_cell(ev.step, "icon", ICONS[ev.state])
            steps.update_cell(ev.step, "detail", ev.detail)
        if ev.state != "running":
            who = f"{ev.node}: " if ev.node else ""
            colour = {"done": "green", "failed": "red"}[ev.state]
            log.write(f"[{colour}]{ev.step} [/]{who}{ev.detail}")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "btn-provision":
            self.dash.start_provision(self.form_values())
        elif event.button.id == "btn-deprovision":
            self.dash.confirm_deprovision()
