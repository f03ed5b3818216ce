"""The dashboard and the lab: going live (asking to start a lab that is down), starting it
from the dashboard (`L`, the palette), and the polling that follows."""

from __future__ import annotations

from ecmptui.dashboard.host import Dashboard
from ecmptui.errors import EcmpError
from ecmptui.screens.dialogs import LabDownScreen


class LabControl:
    def __init__(self, app: Dashboard) -> None:
        self.app = app

    def go_live(self) -> None:
        """Start polling; a lab that is down is offered to be started first."""
        app = self.app
        if app.cockpit.lab_up() is False:
            app.lab_down = True
            app.push_screen(LabDownScreen(app.cockpit.settings.lab, app.read_only), self._answer)
        else:
            app.begin_polling()

    def _answer(self, start: bool | None) -> None:
        if start:
            self.start()
        self.app.begin_polling()  # also without a lab: the screens say how to start it

    def asked(self) -> None:
        """The operator asked to start the lab."""
        if self.app.cockpit.lab_up() is None:
            self.app.notify("this target has no lab", severity="warning")
        elif not self.app.read_only:
            self.start()
        else:
            self.app.notify(
                "read-only session: starting the lab is not allowed", severity="warning"
            )

    def start(self) -> None:
        self.app.run_worker(self._start(), exclusive=True, group="lab")

    async def _start(self) -> None:
        app = self.app
        app.notify("starting the lab…")

        def progress(stage: str) -> None:  # the image build, from the worker's thread
            app.call_from_thread(app.notify, f"building the lab image: {stage}")

        try:
            app.notify(await app.cockpit.start_lab(progress))
        except EcmpError as exc:
            app.notify(str(exc), severity="error", timeout=10)
            return
        app.lab_down = False
        app.project_label = app.cockpit.project_label()  # a new lab, a new project
        app.refresh_bindings()
        app.begin_polling()
        app.poll_status()
