"""A served session's side of the dashboard: it joins the server's feed, and the server's
timeline records (for every operator's actions) land in this session's timeline."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING, Any, cast

from ecmptui.dashboard.host import Dashboard
from ecmptui.errors import EcmpError
from ecmptui.screens.messages import JobFinished, StepUpdate
from ecmptui.traffic.model import ActionRecord

if TYPE_CHECKING:
    from ecmptui.serve.client import FeedCockpit

SHARED_FIELDS = (
    "t",
    "outcome",
    "convergence_ms",
    "recovery_ms",
    "failed",
    "settled",
    "fib_ms",
    "by",
)


class FeedJoin:
    def __init__(self, app: Dashboard) -> None:
        self.app = app
        self._remote: dict[int, ActionRecord] = {}  # the server's records, by its id

    async def open(self) -> bool:
        """Connect to the server's feed (False: it failed, and the status line says why)."""
        app = self.app
        cockpit = cast("FeedCockpit", app.cockpit)
        cockpit.on_record = self.record
        cockpit.on_step = lambda ev: (
            None if app.get_screen("provision").post_message(StepUpdate(ev)) else None
        )
        cockpit.on_job = lambda job, error, detail: (
            None if app.post_message(JobFinished(job, error, detail or "")) else None
        )
        try:
            await cockpit.open()
        except EcmpError as exc:
            app.show_status(None, str(exc))
            return False
        app.read_only = cockpit.read_only
        app.rate = cockpit.fixed_rate or app.rate
        return True

    def record(self, rid: int, remote: ActionRecord) -> None:
        """An action the server ran (for any operator), as it progresses."""
        rec = self._remote.get(rid)
        if rec is None:
            rec = self._remote[rid] = self.app.traffic.begin(remote.node, remote.action, t=remote.t)
        for f in SHARED_FIELDS:
            setattr(rec, f, getattr(remote, f))
        if remote.settled:
            del self._remote[rid]

    def probe_state(self) -> str:
        return cast("FeedCockpit", self.app.cockpit).probe_state


def report_crash(renderables: list[Any], error_fd: int | None) -> None:
    """Served: the viewer gets one line; the traceback goes to the server's log."""
    if error_fd is not None:
        from rich.console import Console

        with contextlib.suppress(OSError), os.fdopen(error_fd, "w", closefd=False) as fh:
            console = Console(file=fh, width=120, no_color=True, force_terminal=False, emoji=False)
            for renderable in renderables:
                console.print(renderable)
    print(
        "ecmptui: the dashboard stopped after an internal error; the server's log has the details",
        file=sys.stderr,
    )
