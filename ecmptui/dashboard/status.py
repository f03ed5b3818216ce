"""The dashboard's status: polled once a second in a worker (a poll still running is not
cancelled by the next one), and the lab going away or coming back noticed."""

from __future__ import annotations

from ecmptui.dashboard.host import Dashboard
from ecmptui.errors import EcmpError
from ecmptui.screens.messages import StatusReady


class StatusPolling:
    def __init__(self, app: Dashboard) -> None:
        self.app = app
        self._in_flight = False
        self.polling = False

    def begin(self) -> None:
        """Poll once a second from now on (once only, however often it is called)."""
        if self.polling:
            return
        self.polling = True
        self.app.project_label = self.app.cockpit.project_label()
        self.app.set_interval(1.0, self.poll)
        self.poll()

    def poll(self) -> None:
        """Ask for a new snapshot, unless one is still being gathered: a poll that takes
        longer than the interval must land, not be cancelled by the next one."""
        if self._in_flight:
            return
        self._in_flight = True
        self.app.run_worker(self._worker(), group="status")

    async def _worker(self) -> None:
        app = self.app
        cockpit = app.cockpit
        try:
            st = await cockpit.status()
        except EcmpError as exc:
            lab_up = cockpit.lab_up()
            if lab_up is False and not app.lab_down:  # the lab went away under us
                await cockpit.reset()
            app.post_message(StatusReady(None, str(exc), lab_up is False))
            return
        except Exception as exc:  # a status must never end the dashboard
            app.post_message(StatusReady(None, f"status failed: {type(exc).__name__}: {exc}"))
            return
        finally:
            self._in_flight = False
        if st.error and cockpit.lab_up() is False:  # the lab went away under us
            await cockpit.reset()
            app.post_message(StatusReady(None, st.error, lab_down=True))
            return
        app.post_message(StatusReady(st))

    def landed(self, msg: StatusReady) -> None:
        """A poll's result: the lab's coming and going said once, then the status shown."""
        app = self.app
        if msg.lab_down != app.lab_down:
            app.lab_down = msg.lab_down
            app.refresh_bindings()
            if msg.lab_down:
                app.notify(
                    f"the lab {app.cockpit.settings.lab!r} is down: press L to start it",
                    severity="warning",
                    timeout=10,
                )
            else:  # back, maybe rebuilt: its project is another one
                app.project_label = app.cockpit.project_label()
        app.show_status(None if msg.lab_down else msg.status, msg.error)
