"""`drill --report report.html`: per scenario a chart of who answered and what failed, with
the action, restore and FIB marks, then its figures and its flows; the summary table first."""

from __future__ import annotations

import time

from ecmptui.report.chart import chart
from ecmptui.report.page import Cell, Page
from ecmptui.traffic.drill import (
    DEFINITIONS,
    ScenarioResult,
    distribution,
    failed_label,
    fib_label,
    fmt_ms,
    node_label,
    scenario_label,
)


def _on_off(v: bool | None) -> str:
    return "-" if v is None else ("on" if v else "off")


def _ms(v: float | None) -> str:
    return "-" if v is None else fmt_ms(v)


def anchor(i: int, r: ScenarioResult) -> str:
    return f"scenario-{i + 1}-{r.name}-ipv{r.family}"


def drill_html(
    results: list[ScenarioResult], rate: float, target: str, at: float | None = None
) -> str:
    """The whole report as one HTML document."""
    families = sorted({r.family for r in results})
    dual = len(families) > 1
    lab = target == "lab"
    page = Page("ecmptui drill report")
    page.heading(1, "ecmptui drill report")
    probed = " and ".join(f"IPv{f}" for f in families) or "-"
    when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(at or time.time()))
    page.paragraph(
        f"Target {target}, probing the {probed} EIP at {rate:.0f} requests/s, a new "
        f"connection each. {len(results)} scenario(s), "
        f"{sum(r.recovered for r in results)} recovered. Written {when}.",
        "meta",
    )
    page.table(
        [
            "scenario",
            "node",
            "FIB updated",
            "convergence",
            "failed (refused/reset/timeout)",
            "answered by, before",
            "answered by, during",
            "recovery",
            "recovered",
        ],  # fmt: skip
        [
            [
                scenario_label(r, dual),
                _on_off(r.bfd),
                _on_off(r.health),
                node_label(r),
                fib_label(r.fib_ms, lab),
                Cell(fmt_ms(r.convergence_ms), "num"),
                Cell(failed_label(r), "num bad" if sum(r.failed.values()) else "num"),
                distribution(r.before),
                distribution(r.after),
                Cell(_ms(r.recovery_ms), "num"),
                Cell("yes", "good") if r.recovered else Cell("NO", "bad"),
            ]
            for r in results
        ],
        "summary",
    )
    for i, r in enumerate(results):
        _scenario(page, i, r, dual, lab)
    page.heading(2, "How to read it")
    page.items(
        [
            "The chart: answers per second by backend (one line each) and failed requests "
            "per second (red bars), by the time the request was sent, in seconds from the "
            "action (0). Dashed lines: the action, the restore and the fabric's FIB change.",
            *DEFINITIONS,
        ],
        "help",
    )
    return page.html()


def _scenario(page: Page, i: int, r: ScenarioResult, dual: bool, lab: bool) -> None:
    label = scenario_label(r, dual) + (" with BFD" if r.bfd else "")
    page.heading(2, f"{i + 1}. {label} on {node_label(r)}", anchor(i, r))
    failed = sum(r.failed.values())
    page.paragraph(
        f"{r.requests} requests; {failed} failed; "
        + ("recovered." if r.recovered else "did NOT recover: see the notes.")
    )
    if r.chart is not None:
        page.add(chart(r.chart, f"{label}: answers and failures per second", f"chart-{i + 1}"))
    page.table(
        ["figure", "value"],
        [
            ["BFD", _on_off(r.bfd)],
            ["health check", _on_off(r.health)],
            ["FIB updated", fib_label(r.fib_ms, lab)],
            ["convergence", fmt_ms(r.convergence_ms)],
            ["last answer from the node", _ms(r.last_answer_ms)],
            ["failed (refused/reset/timeout)", failed_label(r)],
            ["answered by, before", distribution(r.before)],
            ["answered by, during", distribution(r.after)],
            ["recovery", _ms(r.recovery_ms)],
            ["recovered", "yes" if r.recovered else "NO"],
        ],
        "figures",
    )
    if r.flows:
        f = r.flows
        others = f["flows"] - f["on_node"]
        page.table(
            [
                "long-lived flows",
                "on the node",
                "broken on the node",
                "broken elsewhere (bystanders)",
                "share of bystanders broken",
                "came back elsewhere",
            ],  # fmt: skip
            [
                [
                    Cell(str(f["flows"]), "num"),
                    Cell(str(f["on_node"]), "num"),
                    Cell(str(f["affected"]), "num"),
                    Cell(str(f["bystanders"]), "num bad" if f["bystanders"] else "num"),
                    Cell(f"{f['bystanders'] / others:.2f}" if others else "-", "num"),
                    Cell(str(f["moved"]), "num"),
                ]
            ],
            "flows",
        )
    if r.notes:
        page.items(r.notes)
