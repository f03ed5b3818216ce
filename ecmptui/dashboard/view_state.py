"""The view the app hands down: its state now, with the status line and what to do next."""

from __future__ import annotations

from rich.text import Text

from ecmptui.dashboard.host import Dashboard
from ecmptui.screens.view import DashboardView

STALE_S = 3.0  # a status older than this is highlighted


def build_view(app: Dashboard) -> DashboardView:
    """The state the screens show, now."""
    cockpit = app.cockpit
    return DashboardView(
        now=app.clock(),
        wall=app.wall(),
        status=app.status,
        status_line=status_line(app),
        empty=empty_state(app),
        events=app.events,
        events_seq=app.events.seq,
        traffic=app.traffic,
        read_only=app.read_only,
        rate=app.rate,
        paused=app.paused,
        probe_state=app.probe_state,
        target_label=cockpit.target_label(),
        project_label=app.project_label,
        provisions=cockpit.provisions,
        job_running=app.job_running,
        lab_down=app.lab_down,
        offered=frozenset(a.name for a in cockpit.actions()),
        routers=cockpit.target.caps.router_view,
        defaults=cockpit.settings.provision,
    )


def status_line(app: Dashboard) -> Text:
    """How old the status is (highlighted once older than 3 s), and any error."""
    st, line = app.status, Text()
    oldest = st.oldest() if st is not None else None
    if oldest is not None:
        age = max(0.0, app.wall() - oldest)
        line.append(f"status updated {age:.1f} s ago", style="bold red" if age > STALE_S else "dim")
    if st is not None and st.error:
        line.append(f"  API: {st.error} (last inventory shown)", style="yellow")
    if app.status_error:
        line.append(f"  {app.status_error}", style="red")
    return line


def empty_state(app: Dashboard) -> str:
    """What to do next when there is nothing to show ("" when there is)."""
    if app.lab_down:
        return (
            f"The lab [b]{app.cockpit.settings.lab}[/] is down. Press [b]L[/] to start it "
            "(the same as `ecmptui lab up`)."
        )
    if app.status is None:
        return app.status_error or "waiting for the first status…"
    if not app.status.nodes:
        if app.read_only:
            return "Nothing is provisioned yet (an operator can provision it)."
        return (
            "Nothing is provisioned yet: press [b]p[/] for the Provision screen, then "
            "[b]P[/] to provision."
        )
    return ""
