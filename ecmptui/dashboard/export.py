"""The dashboard's export: the timeline and the BGP log, for an incident report."""

from __future__ import annotations

import time
from pathlib import Path

from ecmptui.dashboard.host import Dashboard
from ecmptui.errors import EcmpError


def export(app: Dashboard) -> list[Path]:
    """Write the timeline and the BGP log (to --export DIR, else a new directory here)."""
    from ecmptui.traffic.export import timeline_rows, write_export

    directory = Path(app.export_dir or time.strftime("ecmptui-export-%Y%m%d-%H%M%S"))
    now_wall, now = app.wall(), app.clock()
    rows = timeline_rows(app.traffic.timeline, lambda t: now_wall - (now - t))
    try:
        paths = write_export(directory, rows, [(e.at, e.text) for e in app.events])
    except EcmpError as exc:
        app.notify(str(exc), severity="error", timeout=10)
        return []
    app.notify(f"exported {len(rows)} action(s) and {len(app.events)} log line(s) to {directory}/")
    return paths
