"""The Textual app: builds the screens, owns the workers and the prober, routes results.

Everything it shows comes from the UI-free core through `Cockpit`; workers do the I/O and
post messages; the screens only render the app's state.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from ecmptui.actions import ACTIONS, ROUTER_ACTIONS
from ecmptui.cockpit import Cockpit, ReadOnlyError, SampleStream
from ecmptui.deployment.status import DeploymentStatus, diff
from ecmptui.display import event_line
from ecmptui.errors import EcmpError
from ecmptui.limits import MAX_RATE, MIN_RATE
from ecmptui.screens.bgp import BgpScreen
from ecmptui.screens.dialogs import ConfirmScreen, LabDownScreen
from ecmptui.screens.help import HelpScreen
from ecmptui.screens.messages import JobFinished, StatusReady, StepUpdate
from ecmptui.screens.provision import ProvisionScreen
from ecmptui.screens.traffic import TrafficScreen
from ecmptui.traffic.model import ActionRecord, TrafficModel
from ecmptui.traffic.samples import Sample

if TYPE_CHECKING:
    from ecmptui.serve.client import FeedCockpit

SERVER_SIDE_COMMANDS = {"Screenshot"}  # not offered in a served session
MAX_EVENTS = 2000  # the BGP log keeps this many lines
STALE_S = 3.0  # a status older than this is highlighted


PROBE_RETRY_S = 2.0  # a prober that failed to start is tried again


@dataclass(frozen=True)
class LogEntry:
    """One line of the BGP log: when it happened (wall time) and what."""

    seq: int
    at: float
    text: str


class EcmpApp(App):
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

    def __init__(
        self,
        cockpit: Cockpit,
        *,
        live: bool = True,
        rate: float = 100.0,
        start_mode: str | None = None,
        served: bool = False,
        error_fd: int | None = None,
        export_dir: str | None = None,
        flows: int = 0,
    ) -> None:
        super().__init__()
        self.cockpit = cockpit
        self.served = served  # a session of `ecmptui serve`: nothing outside the app
        self.error_fd = error_fd  # served: where a traceback goes (the server's log)
        self.read_only = cockpit.read_only
        self.live = live
        self.rate = rate
        self.start_mode = start_mode
        self.clock: Callable[[], float] = time.monotonic  # sample times
        self.wall: Callable[[], float] = time.time  # what the log shows
        self.status: DeploymentStatus | None = None
        self._status_in_flight = False
        self.status_error: str | None = None
        self.lab_down = False
        self.events: deque[LogEntry] = deque(maxlen=MAX_EVENTS)  # the BGP screen's log
        self._event_seq = 0
        self.export_dir = export_dir
        self.flows = flows  # long-lived flows beside the probe (0: none)
        self._polling = False
        self._probe_eip: str | None = None
        self.traffic = TrafficModel()
        self.stream: SampleStream | None = None  # while probing
        self._probe_starting = False
        self.paused = False
        self.probe_state = "prober idle"
        self.project_label = "-"
        self.job_running = False
        self._remote: dict[int, ActionRecord] = {}  # served: the server's timeline records
        self.sub_title = cockpit.target_label() + (" · read-only" if self.read_only else "")

    # -- start-up --------------------------------------------------------------------------
    def on_mount(self) -> None:
        self.switch_mode(self.start_mode or "traffic")
        if self.served:
            signal.signal(signal.SIGTERM, lambda *_: self.call_later(self.exit))
        if not self.live:
            return
        if self.cockpit.shared_timeline:
            self.run_worker(self._join_feed(), group="feed")
        else:
            self._start_live()

    async def _join_feed(self) -> None:
        """A served session: connect to the server's feed, then go on as usual."""
        cockpit = cast("FeedCockpit", self.cockpit)
        cockpit.on_record = self._on_remote_record
        cockpit.on_step = lambda ev: None if self.post_message(StepUpdate(ev)) else None
        cockpit.on_job = self._on_remote_job
        try:
            await cockpit.open()
        except EcmpError as exc:
            self.status_error = str(exc)
            self._refresh_current()
            return
        self.read_only = cockpit.read_only
        self.rate = cockpit.fixed_rate or self.rate
        self.sub_title = cockpit.target_label() + (" · read-only" if self.read_only else "")
        self._start_live()

    def _start_live(self) -> None:
        lab_up = self.cockpit.lab_up()
        if lab_up is False:
            self.lab_down = True
            self.push_screen(
                LabDownScreen(self.cockpit.settings.lab, self.read_only), self._lab_answer
            )
        else:
            self._begin_polling()

    def _lab_answer(self, start: bool | None) -> None:
        if start:
            self.start_lab()
        self._begin_polling()  # also without a lab: the screens say so and how to start it

    def action_start_lab(self) -> None:
        if self.cockpit.lab_up() is None:
            self.notify("this target has no lab", severity="warning")
        elif not self.refuse_if_read_only("starting the lab"):
            self.start_lab()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "start_lab":
            return self.lab_down  # in the Footer only when there is a lab to start
        if action == "switch_mode" and parameters and parameters[0] == self.current_mode:
            return False  # the screen shown: its key would do nothing (80 columns)
        return True

    @work(exclusive=True, group="lab")
    async def start_lab(self) -> None:
        self.notify("starting the lab…")

        def progress(stage: str) -> None:  # the image build, from the worker's thread
            self.call_from_thread(self.notify, f"building the lab image: {stage}")

        try:
            self.notify(await self.cockpit.start_lab(progress))
        except EcmpError as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return
        self.lab_down = False
        self.project_label = self.cockpit.project_label()  # a new lab, a new project
        self.refresh_bindings()
        self._begin_polling()
        self.poll_status()

    def _begin_polling(self) -> None:
        if self._polling:
            return
        self._polling = True
        self.project_label = self.cockpit.project_label()
        self.set_interval(1.0, self.poll_status)
        self.set_interval(0.25, self._tick)
        self.poll_status()

    # -- status ----------------------------------------------------------------------------
    def poll_status(self) -> None:
        """Ask for a new snapshot, unless one is still being gathered: a poll that takes
        longer than the interval must land, not be cancelled by the next one."""
        if self._status_in_flight:
            return
        self._status_in_flight = True
        self.run_worker(self._status_worker(), group="status")

    async def _status_worker(self) -> None:
        try:
            st = await self.cockpit.status()
        except EcmpError as exc:
            lab_up = self.cockpit.lab_up()
            if lab_up is False and not self.lab_down:  # the lab went away under us
                await self.cockpit.reset()
            self.post_message(StatusReady(None, str(exc), lab_up is False))
            return
        except Exception as exc:  # a status must never end the dashboard
            self.post_message(StatusReady(None, f"status failed: {type(exc).__name__}: {exc}"))
            return
        finally:
            self._status_in_flight = False
        if st.error and self.cockpit.lab_up() is False:  # the lab went away under us
            await self.cockpit.reset()
            self.post_message(StatusReady(None, st.error, lab_down=True))
            return
        self.post_message(StatusReady(st))

    def on_status_ready(self, msg: StatusReady) -> None:
        if msg.lab_down != self.lab_down:
            self.lab_down = msg.lab_down
            self.refresh_bindings()
            if msg.lab_down:
                self.notify(
                    f"the lab {self.cockpit.settings.lab!r} is down: press L to start it",
                    severity="warning",
                    timeout=10,
                )
            else:  # back, maybe rebuilt: its project is another one
                self.project_label = self.cockpit.project_label()
        self.show_status(None if msg.lab_down else msg.status, msg.error)
        self._follow_eip()

    def _follow_eip(self) -> None:
        """Probe the EIP there is: start when one appears, stop (and forget the traffic)
        when it goes, restart when it changes."""
        eip = self.status.eip if self.status is not None and not self.lab_down else None
        if eip != self._probe_eip and self.live:
            self._probe_eip = eip
            if eip is None:
                self.run_worker(self._stop_probe(), group="probe-stop")
                if self.lab_down:  # the history stays: it shows what led up to it
                    self.probe_state = "prober stopped: the lab is down"
                else:
                    self.traffic.reset()
                    self.probe_state = "prober idle: nothing is deployed"
            elif not self.paused:
                self.start_probe()

    def show_status(self, st: DeploymentStatus | None, error: str | None = None) -> None:
        """Take a status snapshot (also used by tests with fixed data)."""
        if st is not None:
            self._log_changes(self.status, st)
        if st is not None or self.lab_down:
            self.status = st
        self.status_error = error
        self._refresh_current()

    def _log_changes(self, old: DeploymentStatus | None, new: DeploymentStatus) -> None:
        for ev in diff(old, new):
            at = ev.at or self.wall()
            self.log_event(at, event_line(ev))
            if ev.kind == "health" and ev.old is not None and ev.new in ("down", "up"):
                action = "withdraw" if ev.new == "down" else "announce"
                assert ev.node is not None
                # measured from when the node's check changed, not from when we saw it;
                # a withdraw from when the service began failing: the check needed `fall`
                # failed probes to act, and the requests refused meanwhile count too
                t = self.clock() - max(0.0, self.wall() - at)
                h = node.health if (node := new.node(ev.node)) is not None else None
                if action == "withdraw" and h is not None and h.interval_ms and h.fall:
                    t -= h.interval_ms * h.fall / 1000
                self.traffic.begin(ev.node, action, source="health", t=t).outcome = "done"

    def log_event(self, at: float, text: str) -> None:
        """Add a line to the BGP log (`at`: when it happened, wall time)."""
        self._event_seq += 1
        entry = LogEntry(self._event_seq, at, text)
        if self.events and at < self.events[-1].at:
            # BIRD's own time for a change can be older than what is logged already: keep
            # the log in time order (the screens redraw it when an entry lands earlier)
            items = list(self.events)
            bisect.insort(items, entry, key=lambda e: (e.at, e.seq))
            self.events.clear()
            self.events.extend(items)
        else:
            self.events.append(entry)

    def status_line(self) -> Text:
        """How old what the screens show is (highlighted once older than 3 s), and any
        status error."""
        st = self.status
        oldest = st.oldest() if st is not None else None
        line = Text()
        if oldest is not None:
            age = max(0.0, self.wall() - oldest)
            line.append(
                f"status updated {age:.1f} s ago", style="bold red" if age > STALE_S else "dim"
            )
        if st is not None and st.error:
            line.append(f"  API: {st.error} (last inventory shown)", style="yellow")
        if self.status_error:
            line.append(f"  {self.status_error}", style="red")
        return line

    def empty_state(self) -> str:
        """What to do next when there is nothing to show ("" when there is)."""
        if self.lab_down:
            return (
                f"The lab [b]{self.cockpit.settings.lab}[/] is down. Press [b]L[/] to "
                "start it (the same as `ecmptui lab up`)."
            )
        if self.status is None:
            return self.status_error or "waiting for the first status…"
        if not self.status.nodes:
            if self.read_only:
                return "Nothing is provisioned yet (an operator can provision it)."
            return (
                "Nothing is provisioned yet: press [b]p[/] for the Provision screen, then "
                "[b]P[/] to provision."
            )
        return ""

    def _refresh_current(self) -> None:
        screen = self.screen
        if hasattr(screen, "refresh_view"):
            screen.refresh_view()

    def _tick(self) -> None:
        now = self.clock()
        self.traffic.prune(now)
        for rec in self.traffic.settle(now):
            if rec.takes_node_out and rec.source == "operator":
                rec.fib_ms = self.cockpit.fib_ms(rec.t)
        if self.cockpit.shared_timeline and not self.paused:
            self.probe_state = cast("FeedCockpit", self.cockpit).probe_state
        self._refresh_current()

    # -- prober ----------------------------------------------------------------------------
    def _on_sample(self, s: Sample) -> None:
        self.traffic.add(s)

    def start_probe(self) -> None:
        self._probe_starting = True
        self._probe_worker()

    @work(exclusive=True, group="probe")
    async def _probe_worker(self) -> None:
        try:
            await self._stop_probe()
            self.probe_state = f"starting prober at {self.rate:.0f}/s…"
            try:
                self.stream = await self.cockpit.probe(
                    self.rate,
                    self._on_sample,
                    flows=self.flows,
                    on_flow=self.traffic.add_flow if self.flows else None,
                )
            except EcmpError as exc:
                # e.g. the API answered oddly mid-provisioning: try again, visibly
                self.probe_state = f"prober failed: {exc}; retrying in {PROBE_RETRY_S:g} s"
                self.notify(str(exc), severity="error")
                self.set_timer(PROBE_RETRY_S, self._retry_probe)
                return
            self.probe_state = f"probing at {self.rate:.0f}/s"
        finally:
            self._probe_starting = False

    def _retry_probe(self) -> None:
        """A prober that failed to start starts again while there is an EIP to probe."""
        if (
            self.stream is None
            and not self.paused
            and self.live
            and self._probe_eip is not None
            and not self._probe_starting
        ):
            self.start_probe()

    async def _stop_probe(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            await stream.stop()

    def toggle_pause(self) -> None:
        self.paused = not self.paused
        if self.paused:
            self.run_worker(self._stop_probe(), group="probe-stop")
            self.probe_state = "paused"
        else:
            self.start_probe()
        self._refresh_current()

    def set_rate(self, rate: float) -> None:
        if self.cockpit.fixed_rate is not None:
            self.notify(
                f"the server probes for every session at {self.rate:.0f}/s", severity="warning"
            )
            return
        rate = max(MIN_RATE, min(MAX_RATE, rate))
        if rate == self.rate:
            return
        self.rate = rate
        if self.stream is not None and not self.paused:
            self.start_probe()
        self._refresh_current()

    # -- actions ---------------------------------------------------------------------------
    def refuse_if_read_only(self, what: str) -> bool:
        if self.read_only:
            self.notify(f"read-only session: {what} is not allowed", severity="warning")
            return True
        return False

    def node_action(self, node: str, action: str) -> None:
        """Run a node action; one that takes the node out (or reboots it) asks first."""
        if self.refuse_if_read_only(f"{action} {node}"):
            return
        a = ACTIONS.get(action)
        run = lambda: self.run_worker(self._node_action(node, action), group="actions")
        if a is not None and a.confirm:
            self._confirm(f"{a.title} {node}?", a.help, a.button or a.title, run)
        else:
            run()

    def drain_node(self, node: str) -> None:
        """Drain a node (asks first): new connections elsewhere, then withdrawn."""
        if self.refuse_if_read_only(f"drain {node}"):
            return
        self._confirm(
            f"Drain {node}?",
            "new connections go to the others; when its own "
            "have ended (at most 60 s) it is withdrawn (resilient-ECMP router only)",
            "Drain",
            lambda: self.run_worker(self._drain(node), group="actions"),
        )

    async def _drain(self, node: str) -> None:
        rec = self.traffic.begin(node, "drain")
        rec.settled = True  # it measures itself: its note is the result
        rec.note = "draining…"

        def progress(msg: str) -> None:
            self.notify(msg)

        try:
            rec.note, said = await self.cockpit.drain(node, on_progress=progress)
            rec.outcome = "done"
            self.notify(said, timeout=15)  # the whole story; the timeline keeps the gist
        except (EcmpError, ReadOnlyError) as exc:
            rec.outcome = f"failed: {exc}"
            self.notify(str(exc), severity="error", timeout=15)
        self.poll_status()

    def router_action(self, router: str, action: str) -> None:
        if self.refuse_if_read_only(f"{action} {router}"):
            return
        ra = ROUTER_ACTIONS[action]
        run = lambda: self.run_worker(
            self._node_action(router, action, router=True), group="actions"
        )
        if action != "restore":
            self._confirm(f"{ra.title} router {router}?", ra.help, ra.button, run)
        else:
            run()

    def _confirm(self, question: str, detail: str, yes: str, then: Callable[[], object]) -> None:
        def answered(ok: bool | None) -> None:
            if ok:
                then()

        self.push_screen(ConfirmScreen(question, yes=yes, detail=detail), answered)

    async def _node_action(self, node: str, action: str, router: bool = False) -> None:
        # served: the server keeps the timeline record (`_on_remote_record`)
        rec = None if self.cockpit.shared_timeline else self.traffic.begin(node, action)

        def effect(t: float) -> None:
            if rec is not None:
                rec.t = t  # measure from the moment the command runs, not from the click

        try:
            if router:
                msg = await self.cockpit.router_act(node, action, on_effect=effect)
            else:
                msg = await self.cockpit.act(node, action, on_effect=effect)
        except (EcmpError, ReadOnlyError) as exc:
            if rec is not None:
                rec.outcome = f"failed: {exc}"
            self.notify(str(exc), severity="error", timeout=10)
            return
        if rec is not None:
            rec.outcome = "done"
        for note in self.cockpit.warnings:  # e.g. the API was not reached
            self.notify(note, severity="warning")
        self.cockpit.warnings.clear()
        self.notify(msg)
        self.poll_status()

    def start_provision(self, values: dict) -> None:
        if not self.cockpit.provisions:  # checking changes nothing: allowed when read-only
            self.run_worker(self._check_nodes(), exclusive=True, group="job")
            return
        if self.refuse_if_read_only("provisioning"):
            return
        if self.job_running:
            self.notify("a provisioning job is already running", severity="warning")
            return
        self.run_worker(self._provision(values), exclusive=True, group="job")

    async def _job(self, name: str, start: Callable[[], tuple], done: Callable) -> None:
        """Run a provisioning-type job: `start()` returns (state, events); its events go to
        the Provision screen, then `done(state)` is the closing line."""
        self.job_running = True
        try:
            state, events = start()
            async for ev in events:
                self.post_message(StepUpdate(ev))
        except EcmpError as exc:
            self.post_message(JobFinished(name, str(exc)))
            return
        finally:
            self.job_running = False
        self.post_message(JobFinished(name, None, done(state)))

    def _provision_screen(self) -> ProvisionScreen:
        return cast(ProvisionScreen, self.get_screen("provision"))

    async def _provision(self, values: dict) -> None:
        self._provision_screen().reset_steps()

        def done(prov: Any) -> str:
            if self.cockpit.shared_timeline:  # the server ran it and said how it went
                return str(prov.detail)
            inv = prov.inventory
            return f"{inv.eip} announced by {len(inv.nodes)} node(s)" + (
                "" if prov.changed else " (no change)"
            )

        await self._job("provision", lambda: self.cockpit.provision(**values), done)

    async def _check_nodes(self) -> None:
        self.notify("checking every node over SSH…")
        try:
            results = await self.cockpit.check_nodes()
        except EcmpError as exc:
            self.notify(str(exc), severity="error")
            return
        self._provision_screen().show_checks(results)
        bad = [r["name"] for r in results if not r["ok"]]
        self.notify(
            f"problems on {', '.join(bad)}" if bad else "every node is healthy",
            severity="warning" if bad else "information",
        )

    def confirm_deprovision(self) -> None:
        if self.refuse_if_read_only("deprovisioning"):
            return
        if self.job_running:  # never cancel a provisioning run half-way
            self.notify(
                "a provisioning job is running: deprovision when it has finished",
                severity="warning",
            )
            return

        def answered(yes: bool | None) -> None:
            if yes and not self.job_running:
                self.run_worker(self._deprovision(), exclusive=True, group="job")

        self.push_screen(
            ConfirmScreen(
                "Delete every server, the EIP and the SSH key that provisioning made?",
                yes="Deprovision",
            ),
            answered,
        )

    async def _deprovision(self) -> None:
        await self._stop_probe()
        await self._job(
            "deprovision",
            lambda: (None, self.cockpit.deprovision()),
            lambda _: "everything removed",
        )

    def _on_remote_record(self, rid: int, remote: ActionRecord) -> None:
        """Served: an action the server ran (for any operator), as it progresses."""
        rec = self._remote.get(rid)
        if rec is None:
            rec = self._remote[rid] = self.traffic.begin(remote.node, remote.action, t=remote.t)
        for f in (
            "t",
            "outcome",
            "convergence_ms",
            "recovery_ms",
            "failed",
            "settled",
            "fib_ms",
            "by",
        ):
            setattr(rec, f, getattr(remote, f))
        if remote.settled:
            del self._remote[rid]

    def _on_remote_job(self, job: str, error: str | None, detail: str | None) -> None:
        self.post_message(JobFinished(job, error, detail or ""))

    def on_step_update(self, msg: StepUpdate) -> None:
        self._provision_screen().apply_event(msg.event)

    def on_job_finished(self, msg: JobFinished) -> None:
        if msg.error:
            self.notify(f"{msg.job} failed: {msg.error}", severity="error", timeout=10)
        else:
            self.notify(f"{msg.job}: {msg.detail}")
        self.poll_status()

    # -- commands, help, quit --------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for command in super().get_system_commands(screen):
            if not (self.served and command.title in SERVER_SIDE_COMMANDS):
                yield command
        for mode, title in (
            ("provision", "Provision screen"),
            ("bgp", "BGP screen"),
            ("traffic", "Traffic screen"),
        ):
            yield SystemCommand(title, f"Switch to the {title}", lambda m=mode: self.switch_mode(m))
        yield SystemCommand("Zoom the chart", "1, 5 or 15 minutes of traffic", self._zoom_chart)
        if not self.served:  # it would write files on the server
            yield SystemCommand(
                "Export the timeline and the BGP log",
                "JSON lines and Markdown, for an incident report",
                self.export,
            )
        if self.read_only:
            return
        yield SystemCommand(
            "Pause or resume the prober", "Stop/start probing the EIP", self.toggle_pause
        )
        if self.cockpit.fixed_rate is None:
            yield SystemCommand(
                "Set the probe rate",
                f"now {self.rate:.0f}/s ({MIN_RATE:.0f}-{MAX_RATE:.0f})",
                self._edit_rate,
            )
        if self.lab_down:
            yield SystemCommand("Start the lab", "the same as `ecmptui lab up`", self.start_lab)
        if self.cockpit.provisions:
            yield SystemCommand(
                "Provision",
                "the guide's steps with the Provision screen's values",
                self._provision_from_form,
            )
            yield SystemCommand(
                "Deprovision", "delete the servers, the EIP and the key", self.confirm_deprovision
            )
        else:
            yield SystemCommand(
                "Check nodes", "what each configured node looks like", self._provision_from_form
            )
        for n in self.status.nodes if self.status else []:
            for a in self.cockpit.actions():
                yield SystemCommand(
                    f"{a.title} {n.name}",
                    a.help,
                    lambda a=a.name, name=n.name: self.node_action(name, a),
                )
            if self.cockpit.target.caps.router_view:
                yield SystemCommand(
                    f"Drain {n.name}",
                    "new connections elsewhere, then withdraw (resilient ECMP)",
                    lambda name=n.name: self.drain_node(name),
                )
        cores = self.status.router.cores if self.status and self.status.router else []
        for c in cores:
            for ra in ROUTER_ACTIONS.values():
                yield SystemCommand(
                    f"{ra.title} router {c.name}",
                    ra.help,
                    lambda a=ra.name, r=c.name: self.router_action(r, a),
                )

    def _zoom_chart(self) -> None:
        self.switch_mode("traffic")
        cast(TrafficScreen, self.get_screen("traffic")).action_zoom()

    def _edit_rate(self) -> None:
        self.switch_mode("traffic")
        self.get_screen("traffic").query_one("#rate").focus()

    def _provision_from_form(self) -> None:
        self.start_provision(self._provision_screen().form_values())

    def export(self) -> list[Path]:
        """Write the timeline and the BGP log (to --export DIR, else a new directory here)."""
        from ecmptui.traffic.export import timeline_rows, write_export

        directory = Path(self.export_dir or time.strftime("ecmptui-export-%Y%m%d-%H%M%S"))
        now_wall, now = self.wall(), self.clock()
        rows = timeline_rows(self.traffic.timeline, lambda t: now_wall - (now - t))
        try:
            paths = write_export(directory, rows, [(e.at, e.text) for e in self.events])
        except EcmpError as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return []
        self.notify(
            f"exported {len(rows)} action(s) and {len(self.events)} log line(s) to {directory}/"
        )
        return paths

    def deliver_screenshot(
        self, filename: str | None = None, path: str | None = None, time_format: str | None = None
    ) -> str | None:
        if self.served:  # it would write a file on the server
            self.notify("screenshots are not available in a served session", severity="warning")
            return None
        return super().deliver_screenshot(filename, path, time_format)

    def _print_error_renderables(self) -> None:
        """Served: the viewer gets one line; the traceback goes to the server's log."""
        if not self.served or not self._exit_renderables:
            super()._print_error_renderables()
            return
        if self.error_fd is not None:
            from rich.console import Console

            with contextlib.suppress(OSError), os.fdopen(self.error_fd, "w", closefd=False) as fh:
                console = Console(file=fh, width=120, no_color=True, force_terminal=False)
                for renderable in self._exit_renderables:
                    console.print(renderable)
        self._exit_renderables.clear()
        print(
            "ecmptui: the dashboard stopped after an internal error; the server's log "
            "has the details",
            file=sys.stderr,
        )

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss()
        else:
            self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        await self._stop_probe()
        if self.export_dir:  # --export: what this session saw, written on the way out
            self.export()
        self.exit()

    async def on_unmount(self) -> None:
        await self._stop_probe()  # however the app ends, no prober is left running
        await self.cockpit.close()
