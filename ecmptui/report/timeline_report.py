"""The dashboard's export as HTML: its traffic history as one chart with every action
marked, the actions with what each cost, and the BGP log."""

from __future__ import annotations

import time
from collections.abc import Sequence

from ecmptui.display import stamp
from ecmptui.report.chart import chart
from ecmptui.report.page import Cell, Page
from ecmptui.traffic.export import TimelineRow
from ecmptui.traffic.series import Series


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f} ms"


def timeline_html(
    series: Series, rows: Sequence[TimelineRow], log: Sequence[tuple[float, str]], target: str
) -> str:
    page = Page("ecmptui timeline")
    page.heading(1, "ecmptui timeline")
    page.paragraph(
        f"Target {target}. Exported {time.strftime('%Y-%m-%d %H:%M:%S %Z')}: "
        f"{len(rows)} action(s), {len(log)} BGP log line(s).",
        "meta",
    )
    page.add(chart(series, "answers and failures per second", "chart-timeline"))
    page.heading(2, "Actions")
    page.table(
        ["time", "node", "action", "by", "failed", "convergence", "recovery", "FIB", "result"],
        [
            [
                stamp(r.at),
                r.node,
                r.action,
                r.by,
                Cell(str(r.failed), "num bad" if r.failed else "num"),
                Cell(_ms(r.convergence_ms), "num"),
                Cell(_ms(r.recovery_ms), "num"),
                Cell("-" if r.fib_ms is None else f"+{r.fib_ms:.1f} ms", "num"),
                r.result,
            ]
            for r in rows
        ],
        "actions",
    )
    page.heading(2, "BGP log")
    page.table(["time", "event"], [[stamp(at), text] for at, text in log], "log")
    return page.html()
