"""The dashboard's export: the timeline and the BGP log, for an incident report."""

from __future__ import annotations

import time
from pathlib import Path

from ecmptui.dashboard.host import Dashboard
from ecmptui.errors import EcmpError
from ecmptui.traffic.series import Mark, Series, from_seconds


def export(app: Dashboard) -> list[Path]:
    """Write the timeline and the BGP log (to --export DIR, else a new directory here)."""
    from ecmptui.report.timeline_report import timeline_html
    from ecmptui.traffic.export import timeline_rows, write_export

    directory = Path(app.export_dir or time.strftime("ecmptui-export-%Y%m%d-%H%M%S"))
    now_wall, now = app.wall(), app.clock()
    rows = timeline_rows(app.traffic.timeline, lambda t: now_wall - (now - t))
    log = [(e.at, e.text) for e in app.events]
    html = timeline_html(history(app, now), rows, log, app.cockpit.target_label())
    try:
        paths = write_export(directory, rows, log, html)
    except EcmpError as exc:
        app.notify(str(exc), severity="error", timeout=10)
        return []
    app.notify(f"exported {len(rows)} action(s) and {len(app.events)} log line(s) to {directory}/")
    return paths


def history(app: Dashboard, now: float) -> Series:
    """The traffic the dashboard kept (up to its history), per second, on an axis of seconds
    before now, with every action marked where it happened."""
    span = max(1, min(app.traffic.recorded_s(now), app.traffic.history_s))
    marks = [
        Mark(r.t - now, f"{r.action} {r.node}", "restore" if not r.takes_node_out else "action")
        for r in app.traffic.timeline
        if r.t >= now - span
    ]
    return from_seconds(
        app.traffic.buckets(now, span_s=span), -float(span), marks, "s before the export"
    )
