"""Provision: the guide's steps with live state, per-device progress and a log."""

from __future__ import annotations

from typing import Literal

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, RichLog, Static, Switch

from ecmptui.deployment.status import DeploymentStatus, Observed
from ecmptui.deployment.steps import STEPS, StepEvent, StepState
from ecmptui.display import check_line

from .base import DashboardScreen, log_line
from .messages import (
    ChecksReady,
    DeprovisionRequested,
    JobStarted,
    ProvisionForm,
    ProvisionRequested,
    StepUpdate,
)
from .view import DashboardView

ICONS = {
    StepState.PENDING: "[dim]·[/]",
    StepState.RUNNING: "[yellow]…[/]",
    StepState.DONE: "[green]✓[/]",
    StepState.FAILED: "[red]✗[/]",
}


def deployment_steps(st: DeploymentStatus) -> tuple[dict[str, StepState], dict[str, str]]:
    """Each step's state and detail as the deployment stands (done, failed or pending)."""
    n = len(st.nodes)
    sessions = sum(1 for x in st.nodes if x.api_status not in ("none", "unknown", "error"))
    bird = sum(
        1
        for x in st.nodes
        if x.answering and x.bgp_state not in (Observed.NOT_RUNNING, Observed.WAITING)
    )
    up = sum(1 for x in st.nodes if x.announced)
    failed = [x.name for x in st.nodes if x.device_state == "failed"]

    def state(done: bool, started: bool = True) -> StepState:
        if done:
            return StepState.DONE
        return StepState.FAILED if started else StepState.PENDING

    states = {
        "ssh-key": state(n > 0, False),
        "devices": StepState.FAILED if failed else state(n > 0, False),
        "eip": state(st.eip is not None, False),
        "bgp": state(sessions > 0, False),
        "sessions": state(n > 0 and sessions == n, n > 0),
        "configure": state(n > 0 and bird == n, n > 0),
        "verify": state(n > 0 and up == n, n > 0),
        # from the status alone: the router forwards to every announcing node (the probe
        # itself runs when provisioning ends, and in `check`)
        "service": state(n > 0 and up > 0 and not st.fabric_problems(), n > 0),
    }
    details = {
        "devices": (
            f"failed: {', '.join(failed)} (provision replaces them)"
            if failed
            else f"{n} server(s)"
            if n
            else ""
        ),
        "eip": st.eip or "",
        "sessions": f"{sessions}/{n}" if n else "",
        "configure": f"the routing daemon answers on {bird}/{n}" if n else "",
        "verify": f"{up}/{n} announcing to a router" if n else "",
        "service": "; ".join(st.fabric_problems())
        or ("the router forwards to every announcing node" if up else ""),
    }
    return states, details


class ProvisionScreen(DashboardScreen):
    """Inputs on the left, the checklist and devices on the right, the log below. Between
    jobs the checklist shows the deployment that exists, live."""

    AUTO_FOCUS = "#devices"  # the screen keys work until a field is picked
    BINDINGS = [
        Binding("P", "provision", "Provision it"),
        Binding("D", "deprovision", "Deprovision"),
        Binding("escape", "leave_field", "Leave field", show=False),
    ]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("provision", "deprovision"):
            return not self.view.read_only  # a read-only view shows no action keys
        return True

    def refused_key(self, key: str) -> str | None:
        return {"P": "provisioning", "D": "deprovisioning"}.get(key)

    def action_leave_field(self) -> None:
        """Esc in a field gives the keys back to the screen (q, ?, p, b, t, P, D)."""
        if isinstance(self.focused, Input | Switch):
            self.query_one("#devices", DataTable).focus()

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with Horizontal(id="prov-top"):
            with Vertical(id="prov-form"):
                yield Label("", id="prov-target")
                fields: list[tuple[str, str, Literal["integer", "text"]]] = [
                    ("nodes", "nodes", "integer"),
                    ("metro", "metro", "text"),
                    ("plan", "plan", "text"),
                    ("os", "OS", "text"),
                    ("family", "family", "text"),
                    ("daemon", "daemon", "text"),
                ]
                for key, label, kind in fields:
                    with Horizontal(classes="form-row"):
                        yield Label(label, classes="form-label")
                        yield Input(id=f"in-{key}", type=kind)
                with Horizontal(classes="form-row"):
                    yield Label("BFD", classes="form-label")
                    yield Switch(id="in-bfd")
                with Horizontal(classes="form-row"):
                    yield Button("Provision", variant="primary", id="btn-provision", classes="act")
                    yield Button(
                        "Deprovision", variant="error", id="btn-deprovision", classes="act"
                    )
            with Vertical(id="prov-right"):
                yield DataTable(id="steps", cursor_type="none", show_header=False)
                yield DataTable(id="devices", cursor_type="none")
        yield RichLog(id="prov-log", markup=True, wrap=True, max_lines=500)
        yield Static("", id="prov-age", classes="status-line")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        p = self.view.defaults
        self.query_one("#in-nodes", Input).value = str(p.nodes)
        self.query_one("#in-metro", Input).value = p.metro
        self.query_one("#in-plan", Input).value = p.plan
        self.query_one("#in-os", Input).value = p.operating_system
        family = self.query_one("#in-family", Input)
        family.value, family.placeholder = p.family, "ipv4, ipv6 or dual (lab: dual)"
        daemon = self.query_one("#in-daemon", Input)
        daemon.value, daemon.placeholder = p.daemon, "bird, frr or bird,frr (keep)"
        self.query_one("#in-bfd", Switch).value = p.bfd
        steps = self.query_one("#steps", DataTable)
        steps.add_column("", key="icon", width=1)
        steps.add_column("step", key="step")
        steps.add_column("detail", key="detail")
        for key, title in STEPS:
            steps.add_row(ICONS[StepState.PENDING], title, "", key=key)
        self._step_cells: dict[str, tuple[str, str]] = {}
        self._nodes_set = False
        dev = self.query_one("#devices", DataTable)
        dev.add_column("node", key="node")
        dev.add_column("", key="icon", width=1)
        dev.add_column("progress", key="detail")
        if not self.view.provisions:
            # nothing to provision: the screen lists the configured nodes and checks them
            self.query_one("#btn-provision", Button).label = "Check nodes"
            self.query_one("#btn-deprovision", Button).display = False
            self.query_one("#steps", DataTable).display = False
            for row in self.query(".form-row"):
                if row.query("Input, Switch"):
                    row.display = False
        elif self.view.read_only:
            for b in self.query(Button):
                b.add_class("-ro")
        self.redraw()

    @on(JobStarted)
    def _job_started(self) -> None:
        self.reset_steps()

    @on(StepUpdate)
    def _step(self, msg: StepUpdate) -> None:
        self.apply_event(msg.event)

    @on(ChecksReady)
    def _checks(self, msg: ChecksReady) -> None:
        self.show_checks(msg.results)

    def show_checks(self, results: list[dict[str, object]]) -> None:
        """Static target: one row per node with what `ecmptui check` found."""
        dev = self.query_one("#devices", DataTable)
        log = self.query_one("#prov-log", RichLog)
        dev.clear()
        for r in results:
            detail = check_line(r)
            name = str(r["name"])
            dev.add_row(
                name, ICONS[StepState.DONE if r["ok"] else StepState.FAILED], detail, key=name
            )
            log.write(
                log_line(
                    f"[{'green' if r['ok'] else 'red'}]check [/]{r['name']} ({r['host']}): {detail}"
                )
            )

    def shows_change(self, old: DashboardView, new: DashboardView) -> bool:
        return old.beside_traffic() != new.beside_traffic()  # not the traffic's samples

    def redraw(self) -> None:
        if not self.is_mounted or not self.query("#prov-target"):
            return  # not composed yet: on_mount draws it
        v = self.view
        st = v.status
        count = f"{len(st.nodes)} node(s), EIP {st.eip or '-'}" if st else "-"
        self.query_one("#prov-target", Label).update(
            f"[b]{v.target_label}[/]\nproject {v.project_label[:18]}\n{count}"
        )
        if v.provisions and not v.job_running:
            self._show_deployment()
        self.query_one("#prov-age", Static).update(v.status_line)

    def _show_deployment(self) -> None:
        """The checklist as the deployment stands (nothing provisioned: all pending)."""
        st = self.view.status
        if st is None or self.view.lab_down:
            states = dict.fromkeys((k for k, _ in STEPS), StepState.PENDING)
            details: dict[str, str] = {}
        else:
            states, details = deployment_steps(st)
        steps = self.query_one("#steps", DataTable)
        for key, _title in STEPS:
            icon, detail = ICONS[states[key]], details.get(key, "")
            if self._step_cells.get(key) != (icon, detail):
                steps.update_cell(key, "icon", icon)
                steps.update_cell(key, "detail", detail, update_width=True)
                self._step_cells[key] = (icon, detail)
        if st is not None and not self._nodes_set and st.nodes:
            self.query_one("#in-nodes", Input).value = str(len(st.nodes))
            self._nodes_set = True  # once: after that the field is the operator's

    def action_provision(self) -> None:
        self.post_message(ProvisionRequested(self.form_values()))

    def action_deprovision(self) -> None:
        self.post_message(DeprovisionRequested())

    def form_values(self) -> ProvisionForm:
        nodes = self.query_one("#in-nodes", Input).value.strip()
        return ProvisionForm(
            nodes=int(nodes) if nodes.lstrip("-").isdigit() else -1,
            metro=self.query_one("#in-metro", Input).value.strip(),
            plan=self.query_one("#in-plan", Input).value.strip(),
            operating_system=self.query_one("#in-os", Input).value.strip(),
            bfd=self.query_one("#in-bfd", Switch).value,
            family=self.query_one("#in-family", Input).value.strip().lower(),
            daemon=self.query_one("#in-daemon", Input).value.strip().lower(),
        )

    def reset_steps(self, keys: list[str] | None = None) -> None:
        steps = self.query_one("#steps", DataTable)
        for key, _ in STEPS:
            if keys is None or key in keys:
                steps.update_cell(key, "icon", ICONS[StepState.PENDING])
                steps.update_cell(key, "detail", "")
                self._step_cells.pop(key, None)
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
                dev.update_cell(ev.node, "detail", ev.detail, update_width=True)
        elif ev.step in steps.rows:
            steps.update_cell(ev.step, "icon", ICONS[ev.state])
            steps.update_cell(ev.step, "detail", ev.detail, update_width=True)
            self._step_cells.pop(ev.step, None)
        if ev.state is not StepState.RUNNING:
            who = f"{ev.node}: " if ev.node else ""
            colour = {"done": "green", "failed": "red"}[ev.state]
            log.write(log_line(f"[{colour}]{ev.step} [/]{who}{ev.detail}"))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "btn-provision":
            self.post_message(ProvisionRequested(self.form_values()))
        elif event.button.id == "btn-deprovision":
            self.post_message(DeprovisionRequested())
