"""What the operator asks of the dashboard: node and router actions (asked first when they
take a node out), drains, and the provisioning jobs. Each request is looked up and checked
once here, then run in a worker with its timeline record."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ecmptui.actions import ACTIONS, ROUTER_ACTIONS, Action
from ecmptui.cockpit import ReadOnlyError
from ecmptui.dashboard.host import Dashboard
from ecmptui.deployment.steps import StepEvent
from ecmptui.errors import EcmpError
from ecmptui.screens.dialogs import ConfirmScreen
from ecmptui.screens.messages import (
    ChecksReady,
    JobFinished,
    JobStarted,
    ProvisionForm,
    StepUpdate,
)
from ecmptui.traffic.timeline import run_recorded


class Operations:
    def __init__(self, app: Dashboard) -> None:
        self.app = app

    def refused(self, what: str) -> bool:
        """A read-only view changes nothing: say so (True: refused)."""
        if self.app.read_only:
            self.app.notify(f"read-only session: {what} is not allowed", severity="warning")
            return True
        return False

    def _confirm(self, question: str, detail: str, yes: str, then: Callable[[], object]) -> None:
        def answered(ok: bool | None) -> None:
            if ok:
                then()

        self.app.push_screen(ConfirmScreen(question, yes=yes, detail=detail), answered)

    # -- node and router actions ---------------------------------------------------------
    def node_action(self, node: str, name: str) -> None:
        """A registry action on a node; one that takes the node out (or reboots it) asks
        first."""
        if self.refused(f"{name} {node}"):
            return
        action = ACTIONS.get(name)
        if action is None:
            self.app.notify(f"unknown action {name!r}", severity="error")
            return
        run = lambda: self.app.run_worker(self._act(node, action), group="actions")
        if action.confirm:
            self._confirm(
                f"{action.title} {node}?", action.help, action.button or action.title, run
            )
        else:
            run()

    async def _act(self, node: str, action: Action) -> None:
        cockpit = self.app.cockpit
        await self._recorded(
            node, action.name, lambda eff: cockpit.act(node, action, on_effect=eff)
        )

    def router_action(self, router: str, name: str) -> None:
        if self.refused(f"{name} {router}"):
            return
        ra = ROUTER_ACTIONS.get(name)
        if ra is None:
            self.app.notify(f"unknown router action {name!r}", severity="error")
            return
        cockpit = self.app.cockpit
        run = lambda: self.app.run_worker(
            self._recorded(
                router, name, lambda eff: cockpit.router_act(router, name, on_effect=eff)
            ),
            group="actions",
        )
        if ra.fault:
            self._confirm(f"{ra.title} router {router}?", ra.help, ra.button, run)
        else:
            run()

    async def _recorded(
        self, node: str, action: str, run: Callable[[Callable[[float], None]], Awaitable[str]]
    ) -> None:
        app = self.app
        # served: the server keeps the timeline record (`served.FeedJoin.record`)
        traffic = None if app.cockpit.shared_timeline else app.traffic
        try:
            msg = await run_recorded(traffic, node, action, run)
        except (EcmpError, ReadOnlyError) as exc:
            app.notify(str(exc), severity="error", timeout=10)
            return
        for note in app.cockpit.warnings:  # e.g. the API was not reached
            app.notify(note, severity="warning")
        app.cockpit.warnings.clear()
        app.notify(msg)
        app.poll_status()

    def drain(self, node: str) -> None:
        """Drain a node (asks first): new connections elsewhere, then withdrawn."""
        if self.refused(f"drain {node}"):
            return
        self._confirm(
            f"Drain {node}?",
            "new connections go to the others; when its own have ended (at most 60 s) it is "
            "withdrawn (resilient-ECMP router only)",
            "Drain",
            lambda: self.app.run_worker(self._drain(node), group="actions"),
        )

    async def _drain(self, node: str) -> None:
        app = self.app
        rec = app.traffic.begin(node, "drain")
        rec.settled = True  # it measures itself: its note is the result
        rec.note = "draining…"
        try:
            rec.note, said = await app.cockpit.drain(node, on_progress=app.notify)
            rec.outcome = "done"
            app.notify(said, timeout=15)  # the whole story; the timeline keeps the gist
        except (EcmpError, ReadOnlyError) as exc:
            rec.outcome = f"failed: {exc}"
            app.notify(str(exc), severity="error", timeout=15)
        app.poll_status()

    # -- jobs --------------------------------------------------------------------------------
    def provision(self, form: ProvisionForm) -> None:
        app = self.app
        if not app.cockpit.provisions:  # checking changes nothing: allowed when read-only
            app.run_worker(self._check_nodes(), exclusive=True, group="job")
            return
        if self.refused("provisioning"):
            return
        if app.job_running:
            app.notify("a provisioning job is already running", severity="warning")
            return
        app.run_worker(self._provision(form), exclusive=True, group="job")

    async def _job(
        self,
        name: str,
        start: Callable[[], tuple[Any, AsyncIterator[StepEvent]]],
        done: Callable[[Any], str],
    ) -> None:
        """Run a provisioning-type job: `start()` returns (state, events); its events go to
        the Provision screen, then `done(state)` is the closing line."""
        app = self.app
        app.job_running = True
        try:
            state, events = start()
            async for ev in events:
                app.get_screen("provision").post_message(StepUpdate(ev))
        except EcmpError as exc:
            app.post_message(JobFinished(name, str(exc)))
            return
        finally:
            app.job_running = False
        app.post_message(JobFinished(name, None, done(state)))

    async def _provision(self, form: ProvisionForm) -> None:
        cockpit = self.app.cockpit
        app = self.app
        app.get_screen("provision").post_message(JobStarted("provision"))

        def done(prov: Any) -> str:
            if cockpit.shared_timeline:  # the server ran it and said how it went
                return str(prov.detail)
            inv = prov.inventory
            eips = " and ".join(inv.eips.values())
            return f"{eips} announced by {len(inv.nodes)} node(s)" + (
                "" if prov.changed else " (no change)"
            )

        values = {
            "nodes": form.nodes,
            "metro": form.metro,
            "plan": form.plan,
            "operating_system": form.operating_system,
            "bfd": form.bfd,
            "family": form.family or None,
            "daemon": form.daemon or None,
        }
        await self._job("provision", lambda: cockpit.provision(**values), done)

    async def _check_nodes(self) -> None:
        app = self.app
        app.notify("checking every node over SSH…")
        try:
            results = await app.cockpit.check_nodes()
        except EcmpError as exc:
            app.notify(str(exc), severity="error")
            return
        app.get_screen("provision").post_message(ChecksReady(results))
        bad = [str(r["name"]) for r in results if not r["ok"]]
        app.notify(
            f"problems on {', '.join(bad)}" if bad else "every node is healthy",
            severity="warning" if bad else "information",
        )

    def deprovision(self, stop_probe: Callable[[], Any]) -> None:
        app = self.app
        if self.refused("deprovisioning"):
            return
        if app.job_running:  # never cancel a provisioning run half-way
            app.notify(
                "a provisioning job is running: deprovision when it has finished",
                severity="warning",
            )
            return

        async def run() -> None:
            await stop_probe()
            await self._job(
                "deprovision",
                lambda: (None, app.cockpit.deprovision()),
                lambda _: "everything removed",
            )

        def answered(yes: bool | None) -> None:
            if yes and not app.job_running:
                app.run_worker(run(), exclusive=True, group="job")

        app.push_screen(
            ConfirmScreen(
                "Delete every server, the EIP and the SSH key that provisioning made?",
                yes="Deprovision",
            ),
            answered,
        )
