"""One SVG chart of a `Series`: a line of answers per second per backend, failed requests
per second as red bars, and a dashed vertical line per mark (the action, its restore, the
FIB change). Plain SVG elements, every label as text: readable without a script."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

from ecmptui.traffic.series import Series

WIDTH, HEIGHT = 920, 280
LEFT, RIGHT, TOP, BOTTOM = 56, 190, 36, 40  # margins: axes on the left, legend on the right
# backends' colours (distinct, readable on white); failures are red, marks grey/blue/green
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173",
           "#3182bd", "#e6550d")  # fmt: skip
FAILED = "#d62728"
MARK_COLOURS = {"action": "#444444", "restore": "#2ca02c", "fib": "#1f77b4"}


def nice_step(span: float, ticks: int = 6) -> float:
    """A tick step of 1, 2 or 5 times a power of ten that cuts `span` into about `ticks`."""
    if span <= 0:
        return 1.0
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _fmt(v: float) -> str:
    return f"{v:.10g}" if abs(v) >= 1 or v == 0 else f"{v:.2g}"


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def chart(series: Series, title: str, chart_id: str) -> ET.Element:
    """The chart as an <svg> element (`chart_id`: its id, e.g. the scenario's)."""
    svg = ET.Element(
        "svg",
        {
            "xmlns": "http://www.w3.org/2000/svg",
            "id": chart_id,
            "class": "chart",
            "width": str(WIDTH),
            "height": str(HEIGHT),
            "viewBox": f"0 0 {WIDTH} {HEIGHT}",
            "role": "img",
            "aria-label": title,
        },
    )
    ET.SubElement(svg, "title").text = title
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    ET.SubElement(svg, "rect", {"x": "0", "y": "0", "width": str(WIDTH), "height": str(HEIGHT),
                                "fill": "#ffffff"})  # fmt: skip
    if series.buckets == 0:
        text(svg, LEFT + plot_w / 2, TOP + plot_h / 2, "no requests were made", "middle")
        return svg
    x0, x1 = series.start, series.start + series.buckets * series.bucket_s
    marks = [m for m in series.marks if x0 <= m.at <= x1]
    rates = {b: series.rate(c) for b, c in series.answers.items()}
    failed = series.rate(series.failed)
    top = max([max(v, default=0.0) for v in rates.values()] + [max(failed, default=0.0), 1.0])
    y_step = nice_step(top, 5)
    y_max = y_step * math.ceil(top / y_step)

    def x_at(t: float) -> float:
        return LEFT + (t - x0) / (x1 - x0) * plot_w

    def y_at(v: float) -> float:
        return TOP + plot_h - v / y_max * plot_h

    grid = ET.SubElement(svg, "g", {"class": "grid", "stroke": "#e5e5e5"})
    axis = ET.SubElement(svg, "g", {"class": "axis", "font-size": "11", "fill": "#333"})
    v = 0.0
    while v <= y_max + 1e-9:
        line(grid, LEFT, y_at(v), LEFT + plot_w, y_at(v))
        text(axis, LEFT - 6, y_at(v) + 4, _fmt(v), "end")
        v += y_step
    x_step = nice_step(x1 - x0, 8)
    t = x_step * math.ceil(x0 / x_step)
    while t <= x1 + 1e-9:
        line(grid, x_at(t), TOP, x_at(t), TOP + plot_h)
        text(axis, x_at(t), TOP + plot_h + 16, _fmt(round(t, 6)), "middle")
        t += x_step
    text(axis, LEFT + plot_w / 2, HEIGHT - 6, series.axis, "middle")
    label = text(axis, 14, TOP + plot_h / 2, "per second", "middle")
    label.set("transform", f"rotate(-90 14 {TOP + plot_h / 2:.1f})")

    bars = ET.SubElement(svg, "g", {"class": "failed", "fill": FAILED, "fill-opacity": "0.75"})
    bar_w = max(1.0, plot_w / series.buckets)
    for i, f in enumerate(failed):
        if f > 0:
            x = x_at(series.start + i * series.bucket_s)
            ET.SubElement(bars, "rect", {"x": f"{x:.1f}", "y": f"{y_at(f):.1f}",
                                         "width": f"{bar_w:.1f}",
                                         "height": f"{y_at(0) - y_at(f):.1f}"})  # fmt: skip
    lines = ET.SubElement(svg, "g", {"class": "answers", "fill": "none", "stroke-width": "1.6"})
    for i, (backend, values) in enumerate(rates.items()):
        points = " ".join(
            f"{x_at(series.start + (k + 0.5) * series.bucket_s):.1f},{y_at(val):.1f}"
            for k, val in enumerate(values)
        )
        ET.SubElement(lines, "polyline", {"points": points, "stroke": colour(i),
                                          "data-backend": backend})  # fmt: skip
    for k, m in enumerate(marks):
        g = ET.SubElement(svg, "g", {"class": f"mark {m.kind}"})
        c = MARK_COLOURS.get(m.kind, "#444444")
        ln = line(g, x_at(m.at), TOP, x_at(m.at), TOP + plot_h)
        ln.set("stroke", c)
        ln.set("stroke-dasharray", "5 3")
        # two rows of labels (the FIB change, close after its action, on the second)
        row = 1 if m.kind == "fib" else k % 2
        tx = text(g, x_at(m.at) + 3, TOP - 18 + 11 * row, m.label, "start")
        tx.set("font-size", "11")
        tx.set("fill", c)
    legend(svg, list(rates), LEFT + plot_w + 16)
    return svg


def legend(svg: ET.Element, backends: list[str], x: float) -> None:
    g = ET.SubElement(svg, "g", {"class": "legend", "font-size": "12", "fill": "#222"})
    rows = [(b, colour(i), "line") for i, b in enumerate(backends)] + [
        ("failed requests", FAILED, "box")
    ]
    for i, (name, c, kind) in enumerate(rows):
        y = TOP + 8 + 18 * i
        if kind == "line":
            ln = line(g, x, y, x + 18, y)
            ln.set("stroke", c)
            ln.set("stroke-width", "3")
        else:
            ET.SubElement(g, "rect", {"x": f"{x:.1f}", "y": f"{y - 5:.1f}", "width": "18",
                                      "height": "10", "fill": c})  # fmt: skip
        text(g, x + 24, y + 4, name, "start")


def line(parent: ET.Element, x1: float, y1: float, x2: float, y2: float) -> ET.Element:
    return ET.SubElement(
        parent, "line", {"x1": f"{x1:.1f}", "y1": f"{y1:.1f}", "x2": f"{x2:.1f}", "y2": f"{y2:.1f}"}
    )


def text(parent: ET.Element, x: float, y: float, words: str, anchor: str) -> ET.Element:
    t = ET.SubElement(parent, "text", {"x": f"{x:.1f}", "y": f"{y:.1f}", "text-anchor": anchor})
    t.text = words
    return t
