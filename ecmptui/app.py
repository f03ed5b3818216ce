"""The Textual app: its live state (reactive), handed down to the screens as one view; the
screens' requests, handled with `@on`; the parts that do the work (`ecmptui.dashboard`)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen

from ecmptui.cockpit import Cockpit, SampleStream
from ecmptui.dashboard.commands import PaletteContext, PaletteHooks, palette
from ecmptui.dashboard.export import export
from ecmptui.dashboard.lab import LabControl
from ecmptui.dashboard.operations import Operations
from ecmptui.dashboard.prober import ProberControl
from ecmptui.dashboard.served import FeedJoin, report_crash
from ecmptui.dashboard.status import StatusPolling
from ecmptui.dashboard.view_state import build_view, status_line
from ecmptui.deployment.status import DeploymentStatus
from ecmptui.screens import messages as m
from ecmptui.screens.base import DashboardScreen
from ecmptui.screens.bgp import BgpScreen
from ecmptui.screens.help import HelpScreen
from ecmptui.screens.provision import ProvisionScreen
from ecmptui.screens.traffic import TrafficScreen
from ecmptui.screens.view import DashboardView
from ecmptui.traffic.model import TrafficModel
from ecmptui.traffic.timeline import EventLog, record_changes

if TYPE_CHECKING:
    from ecmptui.metrics.probe_metrics import ProbeMetrics

SERVER_SIDE_COMMANDS = {"Screenshot"}  # not offered in a served session
STATE = ("status", "status_error", "lab_down", "read_only", "paused", "rate", "probe_state",
         "project_label", "job_running")  # fmt: skip


class EcmpApp(App[None]):
    """`ecmptui` with no subcommand."""

    TITLE = "ecmptui"
    AUTO_FOCUS = None  # keys reach the bindings until the user picks a field
    CSS_PATH = str(resources.files("ecmptui.styles") / "app.tcss")
    SCREENS = {"provision": ProvisionScreen, "bgp": BgpScreen, "traffic": TrafficScreen}
    MODES = {"provision": "provision", "bgp": "bgp", "traffic": "traffic"}
    BINDINGS = [
        Binding("p", "switch_mode('provision')", "Provision"),
        Binding("b", "switch_mode('bgp')", "BGP"),
        Binding("t", "switch_mode('traffic')", "Traffic"),
        Binding("L", "start_lab", "Start lab"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
    ]

    # the live state: any change is handed down to the screens as a new view
    status: reactive[DeploymentStatus | None] = reactive(None, init=False)
    status_error: reactive[str | None] = reactive(None, init=False)
    lab_down = reactive(False, init=False)
    read_only = reactive(False, init=False)
    paused = reactive(False, init=False)
    rate = reactive(100.0, init=False)
    probe_state = reactive("prober idle", init=False)
    project_label = reactive("-", init=False)
    job_running = reactive(False, init=False)

    def __init__(self, cockpit: Cockpit, *, live: bool = True, rate: float = 100.0,
                 start_mode: str | None = None, served: bool = False,
                 error_fd: int | None = None, export_dir: str | None = None,
                 flows: int = 0, metrics: ProbeMetrics | None = None) -> None:  # fmt: skip
        super().__init__()
        self.cockpit = cockpit
        self.served = served  # a session of `ecmptui serve`: nothing outside the app
        self.error_fd = error_fd  # served: where a traceback goes (the server's log)
        self.live, self.start_mode, self.export_dir = live, start_mode, export_dir
        self.flows = flows  # long-lived flows beside the probe (0: none)
        self.set_reactive(EcmpApp.read_only, cockpit.read_only)
        self.set_reactive(EcmpApp.rate, rate)
        self.clock: Callable[[], float] = time.monotonic  # sample times
        self.wall: Callable[[], float] = time.time  # what the log shows
        self.events = EventLog()  # the BGP screen's log
        self.traffic = TrafficModel()
        self.metrics = metrics
        self.stream: SampleStream | None = None  # while probing
        self.prober = ProberControl(self)
        self.polling = StatusPolling(self)
        self.ops = Operations(self)
        self.feed = FeedJoin(self)
        self.lab = LabControl(self)
        self._second = 0  # the wall second last handed down (ages tick once a second)
        self._publish_pending = False
        self.sub_title = cockpit.target_label() + (" · read-only" if self.read_only else "")

    # -- start-up --------------------------------------------------------------------------
    def on_mount(self) -> None:
        for name in STATE:
            self.watch(self, name, self._changed, init=False)
        self.switch_mode(self.start_mode or "traffic")
        self.publish()
        if self.served:
            signal.signal(signal.SIGTERM, lambda *_: self.call_later(self.exit))
        if not self.live:
            return
        if self.cockpit.shared_timeline:
            self.run_worker(self._join_feed(), group="feed")
        else:
            self.lab.go_live()

    async def _join_feed(self) -> None:
        if await self.feed.open():
            self.sub_title = self.cockpit.target_label() + (
                " · read-only" if self.read_only else ""
            )
            self.lab.go_live()

    def begin_polling(self) -> None:
        if not self.polling.polling:
            self.set_interval(0.25, self._tick)
        self.polling.begin()

    def action_start_lab(self) -> None:
        self.lab.asked()

    def start_lab(self) -> None:
        self.lab.start()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "start_lab":
            return self.lab_down  # in the Footer only when there is a lab to start
        if action == "switch_mode" and parameters and parameters[0] == self.current_mode:
            return False  # the screen shown: its key would do nothing (80 columns)
        return True

    # -- state down ------------------------------------------------------------------------
    def poll_status(self) -> None:
        if self.live:  # fixed data (tests, screenshots): nothing to poll
            self.polling.poll()

    @on(m.StatusReady)
    def _status_ready(self, msg: m.StatusReady) -> None:
        self.polling.landed(msg)
        status = self.status if self.status is not None and not self.lab_down else None
        self.prober.follow(status.first_eip if status is not None else None)

    def show_status(self, st: DeploymentStatus | None, error: str | None = None) -> None:
        """Take a status snapshot (also used by tests with fixed data)."""
        if st is not None:
            record_changes(self.events, self.traffic, self.status, st, self.clock, self.wall)
        if st is not None or self.lab_down:
            self.status = st
            if self.metrics is not None:
                self.metrics.set_status(st)
        self.status_error = error
        self._changed()

    def log_event(self, at: float, text: str) -> None:
        """Add a line to the BGP log (`at`: when it happened, wall time)."""
        self.events.add(at, text)
        self._changed()

    def _tick(self) -> None:
        now = self.clock()
        self.traffic.prune(now)
        for rec in self.traffic.settle(now, fib_ms=self.cockpit.fib_ms):
            if self.metrics is not None:
                self.metrics.action(rec)
        if self.cockpit.shared_timeline and not self.paused:
            self.probe_state = self.feed.probe_state()
        second = int(self.wall())
        if self.stream is not None or second != self._second:  # new samples, or ages tick
            self._second = second
            self.publish()

    def _changed(self) -> None:
        """Hand the new state down once, after what changed it is done."""
        if not self._publish_pending:
            self._publish_pending = True
            self.call_next(self.publish)

    def publish(self) -> None:
        """Hand the state down to the screens now (a new view)."""
        self._publish_pending = False
        if not self.is_running:
            return  # a publish queued just before the app began to shut down
        view = self.view()
        for name in self.SCREENS:
            try:
                screen = self.get_screen(name)
            except KeyError:
                return  # the app is shutting down: its screens are uninstalled already
            if isinstance(screen, DashboardScreen):
                screen.view = view

    def view(self) -> DashboardView:
        """The state the screens show, now."""
        return build_view(self)

    def status_line(self) -> Text:
        return status_line(self)

    # -- requests up -----------------------------------------------------------------------
    @on(m.NodeActionRequested)
    def _node_action(self, msg: m.NodeActionRequested) -> None:
        self.ops.node_action(msg.node, msg.action)

    @on(m.DrainRequested)
    def _drain(self, msg: m.DrainRequested) -> None:
        self.ops.drain(msg.node)

    @on(m.RouterActionRequested)
    def _router_action(self, msg: m.RouterActionRequested) -> None:
        self.ops.router_action(msg.router, msg.action)

    @on(m.ProvisionRequested)
    def _provision(self, msg: m.ProvisionRequested) -> None:
        self.ops.provision(msg.form)

    @on(m.DeprovisionRequested)
    def confirm_deprovision(self) -> None:
        self.ops.deprovision(self.prober.stop)

    @on(m.PauseToggled)
    def toggle_pause(self) -> None:
        self.prober.toggle_pause()

    @on(m.FamilyToggled)
    def _family(self) -> None:
        self.prober.toggle_family()

    @on(m.RateRequested)
    def _rate(self, msg: m.RateRequested) -> None:
        self.prober.set_rate(msg.rate)

    @on(m.Refused)
    def _refused(self, msg: m.Refused) -> None:
        self.ops.refused(msg.what)

    @on(m.JobFinished)
    def _job_finished(self, msg: m.JobFinished) -> None:
        if msg.error:
            self.notify(f"{msg.job} failed: {msg.error}", severity="error", timeout=10)
        else:
            self.notify(f"{msg.job}: {msg.detail}")
        self.poll_status()

    # -- commands, help, export, quit ------------------------------------------------------
    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        for command in super().get_system_commands(screen):
            if not (self.served and command.title in SERVER_SIDE_COMMANDS):
                yield command
        ctx = PaletteContext(self.cockpit, self.status, self.read_only, self.served,
                             self.lab_down, self.rate)  # fmt: skip
        yield from palette(ctx, PaletteHooks(
            self.post_message, self.switch_mode, self._zoom_chart, self.export,
            self._edit_rate, self.start_lab,
            lambda: self.ops.provision(self.get_screen("provision").form_values()),  # type: ignore[attr-defined]
        ))  # fmt: skip

    def _zoom_chart(self) -> None:
        self.switch_mode("traffic")
        screen = self.get_screen("traffic")
        assert isinstance(screen, TrafficScreen)
        screen.action_zoom()

    def _edit_rate(self) -> None:
        self.switch_mode("traffic")
        self.get_screen("traffic").query_one("#rate").focus()

    def export(self) -> list[Path]:
        """Write the timeline and the BGP log (to --export DIR, else a new directory)."""
        return export(self)

    def deliver_screenshot(self, filename: str | None = None, path: str | None = None,
                           time_format: str | None = None) -> str | None:  # fmt: skip
        if self.served:  # it would write a file on the server
            self.notify("screenshots are not available in a served session", severity="warning")
            return None
        return super().deliver_screenshot(filename, path, time_format)

    def _print_error_renderables(self) -> None:
        """Served: the viewer gets one line; the traceback goes to the server's log."""
        if not self.served or not self._exit_renderables:
            super()._print_error_renderables()
            return
        report_crash(self._exit_renderables, self.error_fd)
        self._exit_renderables.clear()

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss()
        else:
            self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        await self.prober.stop()
        if self.export_dir:  # --export: what this session saw, written on the way out
            self.export()
        self.exit()

    async def on_unmount(self) -> None:
        await self.prober.stop()  # however the app ends, no prober is left running
        await self.cockpit.close()
