"""A stacked column chart: answers per second per backend (one colour each), failures in
red on top, a y axis and a time axis. Plain Rich text, redrawn a few times a second."""

from __future__ import annotations

from collections import Counter

from rich.text import Text
from textual.widget import Widget

PALETTE = ["#4ea1ff", "#ffb347", "#77dd77", "#f49ac2", "#b19cd9", "#ffd700", "#40e0d0",
           "#ff7f50"]
ERROR_COLOUR = "#ff4040"


def colour_for(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


class TrafficChart(Widget):
    """Feed `set_data(buckets, backends)`; buckets are (Counter, failures) per second."""

    DEFAULT_CSS = "TrafficChart { height: 10; }"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._buckets: list[tuple[Counter, int]] = []
        self._backends: list[str] = []

    def set_data(self, buckets: list[tuple[Counter, int]], backends: list[str]) -> None:
        self._buckets, self._backends = buckets, backends
        self.refresh()

    def render(self) -> Text:
        width, height = self.size.width, self.size.height
        axis_w = 6
        plot_w, plot_h = max(1, width - axis_w), max(1, height - 1)
        cols = self._buckets[-plot_w:] if self._buckets else []
        totals = [sum(c.values()) + f for c, f in cols]
        top = max(totals, default=0) or 1
        grid: list[list[tuple[str, str]]] = [[(" ", "")] * len(cols) for _ in range(plot_h)]
        for x, (counts, failed) in enumerate(cols):
            stack: list[str] = []
            for i, b in enumerate(self._backends):
                stack += [colour_for(i)] * counts.get(b, 0)
            stack += [ERROR_COLOUR] * failed
            if not stack:
                continue
            for y in range(plot_h):  # y = 0 is the bottom row
                lo = y * top / plot_h
                idx = int(lo * len(stack) / (totals[x] or 1)) if totals[x] else 0
                if lo < totals[x] and idx < len(stack):
                    grid[plot_h - 1 - y][x] = ("█", stack[idx])
        text = Text()
        for row in range(plot_h):
            label = f"{top:>5}" if row == 0 else (f"{0:>5}" if row == plot_h - 1 else " " * 5)
            text.append(label + "│", style="dim")
            for ch, style in grid[row]:
                text.append(ch, style=style)
            text.append("\n")
        span = len(cols)
        footer = f"{'':5}└" + f"-{span}s".ljust(max(0, len(cols) - 3)) + "now"
        text.append(footer[: width], style="dim")
        return text
