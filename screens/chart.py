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
        self._cache: tuple | None = None

    def set_data(self, buckets: list[tuple[Counter, int]], backends: list[str]) -> None:
        """Redraw only when the data changed (completed seconds change once a second)."""
        if buckets == self._buckets and backends == self._backends:
            return
        self._buckets, self._backends = buckets, list(backends)
        self.refresh()

    def render(self) -> Text:
        key = (self.size, len(self._buckets))
        if self._cache is not None and self._cache[0] == key and self._cache[1] is self._buckets:
            return self._cache[2]
        text = self._draw()
        self._cache = (key, self._buckets, text)
        return text

    def _draw(self) -> Text:
        width, height = self.size.width, self.size.height
        axis_w = 6
        plot_w, plot_h = max(1, width - axis_w), max(1, height - 1)
        # a wide terminal shows the same minute with wider columns, not empty space
        col_w = max(1, plot_w // len(self._buckets)) if self._buckets else 1
        cols = self._buckets[-(plot_w // col_w):] if self._buckets else []
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
            run_style, run_len = None, 0  # one append per run of equal cells, not per cell
            for _ch, style in grid[row]:
                if style != run_style and run_len:
                    text.append(("█" if run_style else " ") * run_len, style=run_style or "")
                    run_len = 0
                run_style = style
                run_len += col_w
            if run_len:
                text.append(("█" if run_style else " ") * run_len, style=run_style or "")
            text.append("\n")
        span = len(cols)
        footer = f"{'':5}└" + f"-{span}s".ljust(max(0, len(cols) * col_w - 3)) + "now"
        text.append(footer[: width], style="dim")
        return text
