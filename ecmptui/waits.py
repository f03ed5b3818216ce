"""Waits that scale with the machine's load (several labs, tests and people share one
machine: a wait that is generous when it is idle is a false failure at a load of 6)."""

from __future__ import annotations

import os
import time

MAX_FACTOR = 8.0  # a wait never grows beyond this many times its idle length


def load_factor() -> float:
    """How many times busier than its cores the machine is (1 when it is not busy)."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return 1.0
    return min(MAX_FACTOR, max(1.0, load / (os.cpu_count() or 1)))


def scaled(seconds: float) -> float:
    """`seconds` as the machine's load stretches it now."""
    return seconds * load_factor()


class Deadline:
    """A deadline of `seconds` on an idle machine, stretched by the load as it is at each
    look (the load may rise while one waits)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.monotonic()

    @property
    def limit(self) -> float:
        return scaled(self.seconds)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def expired(self) -> bool:
        return self.elapsed() > self.limit

    def remaining(self) -> float:
        return max(0.0, self.limit - self.elapsed())
