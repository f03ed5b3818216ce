"""A stacked column chart: answers per second per backend, failures on top, a y axis and a
time axis with the actions marked on it. Plain Rich text, redrawn when its data changes.

Each backend keeps its colour and glyph for good: both come from the node's number (node7
is always the 7th colour and glyph), so 16 nodes are told apart, also without colour.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from typing import Any

from rich.text import Text
from textual.widget import Widget

PALETTE = [
    "#4ea1ff",
    "#ffb347",
    "#77dd77",
    "#f49ac2",
    "#b19cd9",
    "#ffd700",
    "#40e0d0",
    "#ff7f50",
    "#c08040",
    "#00b8c8",
    "#9acd32",
    "#dda0dd",
    "#e0d870",
    "#87cefa",
    "#e06060",
    "#3cb371",
]
GLYPHS = "█▓▒░▚▞▙▟▛▜▀▄▌▐▖▘"
ERROR_COLOUR, ERROR_GLYPH = "#ff4040", "×"
ZOOMS = (60, 300, 900)  # seconds shown: 1, 5, 15 minutes


def slot_for(name: str) -> int:
    """A backend's fixed slot (0-15): its trailing number, else a hash of its name."""
    m = re.search(r"(\d+)$", name)
    if m:
        return (int(m.group(1)) - 1) % len(PALETTE)
    return zlib.crc32(name.encode()) % len(PALETTE)


def style_for(name: str) -> tuple[str, str]:
    """(colour, glyph) of a backend."""
    slot = slot_for(name)
    return PALETTE[slot], GLYPHS[slot]


def swatch(name: str) -> Text:
    colour, glyph = style_for(name)
    return Text(glyph * 2, style=colour)


class TrafficChart(Widget):
    """Feed `set_data(buckets, backends, marks)`; buckets are (Counter, failures) per second,
    oldest first; marks are (seconds from the left edge, label) of actions."""

    DEFAULT_CSS = "TrafficChart { height: 10; }"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._buckets: list[tuple[Counter, int]] = []
        self._backends: list[str] = []
        self._marks: list[tuple[float, str]] = []
        self._caption = ""
        self._cache: tuple | None = None

    def set_data(
        self,
        buckets: list[tuple[Counter, int]],
        backends: list[str],
        marks: list[tuple[float, str]] | None = None,
        caption: str = "",
    ) -> None:
        """Redraw only when the data changed (completed seconds change once a second)."""
        marks = marks or []
        if (
            buckets == self._buckets
            and backends == self._backends
            and marks == self._marks
            and caption == self._caption
        ):
            return
        self._buckets, self._backends = buckets, list(backends)
        self._marks, self._caption = marks, caption
        self._cache = None
        self.refresh()

    def render(self) -> Text:
        if self._cache is not None and self._cache[0] == self.size:
            return self._cache[1]
        text = self._draw()
        self._cache = (self.size, text)
        return text

    def _columns(self, plot_w: int) -> list[tuple[Counter, float]]:
        """Exactly `plot_w` columns over the buckets: a short window stretches (a second
        spans several columns), a long one is summed (several seconds per column)."""
        n = len(self._buckets)
        if n == 0:
            return []
        out = []
        for x in range(plot_w):
            lo, hi = x * n // plot_w, max(x * n // plot_w + 1, (x + 1) * n // plot_w)
            counts: Counter = Counter()
            failed = 0
            for c, f in self._buckets[lo:hi]:
                counts.update(c)
                failed += f
            per = hi - lo
            out.append(
                (
                    counts if per == 1 else Counter({k: v / per for k, v in counts.items()}),
                    failed / per,
                )
            )
        return out

    def _draw(self) -> Text:
        width, height = self.size.width, self.size.height
        axis_w = 6
        plot_w, plot_h = max(1, width - axis_w), max(1, height - 2)
        cols = self._columns(plot_w)
        totals = [sum(c.values()) + f for c, f in cols]
        top = max(totals, default=0) or 1
        styles = {b: style_for(b) for b in self._backends}
        grid: list[list[tuple[str, str]]] = [[(" ", "")] * len(cols) for _ in range(plot_h)]
        for x, (counts, failed) in enumerate(cols):
            stack: list[tuple[float, tuple[str, str]]] = [
                (counts.get(b, 0), styles[b]) for b in self._backends
            ]
            stack.append((failed, (ERROR_COLOUR, ERROR_GLYPH)))
            total = totals[x]
            if not total:
                continue
            level = 0.0
            bounds: list[tuple[float, tuple[str, str]]] = []
            for amount, look in stack:
                level += amount
                bounds.append((level, look))
            for y in range(plot_h):  # y = 0 is the bottom row
                mid = (y + 0.5) * top / plot_h
                if mid > total:
                    break
                # the last band takes what float rounding leaves above it (the sums of
                # per-column averages differ in their last bits), and a backend the
                # legend does not know yet
                colour, glyph = next((st for lvl, st in bounds if mid <= lvl), bounds[-1][1])
                grid[plot_h - 1 - y][x] = (glyph, colour)
        text = Text()
        for row in range(plot_h):
            label = f"{top:>5.0f}" if row == 0 else (f"{0:>5}" if row == plot_h - 1 else " " * 5)
            text.append(label + "│", style="dim")
            run_ch, run_style, run = "", "", 0  # one append per run of equal cells
            for ch, cell_style in grid[row]:
                if (ch, cell_style) != (run_ch, run_style) and run:
                    text.append(run_ch * run, style=run_style)
                    run = 0
                run_ch, run_style = ch, cell_style
                run += 1
            if run:
                text.append(run_ch * run, style=run_style)
            text.append("\n")
        axis = ["─"] * plot_w
        span = len(self._buckets) or 1
        for at, _label in self._marks:
            x = int(at * plot_w / span)
            if 0 <= x < plot_w:
                axis[x] = "▲"
        text.append(" " * 5 + "└", style="dim")
        for ch in axis:
            text.append(ch, style="bold yellow" if ch == "▲" else "dim")
        text.append("\n")
        caption = self._caption or f"-{span}s"
        text.append((" " * 6 + caption.ljust(max(0, plot_w - 3)) + "now")[:width], style="dim")
        return text
