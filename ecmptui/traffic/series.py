"""A chart's data, without drawing it: answers per second per backend and failed requests
per second over time, with marks (an action, its restore, the FIB change). A drill keeps one
per scenario, the dashboard's export makes one from its history; the HTML report draws them."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

from ecmptui.jsonish import JsonObject
from ecmptui.traffic.samples import Sample

MAX_BUCKETS = 2000  # a chart never holds more points than this per line


@dataclass(frozen=True)
class Mark:
    """A moment on the chart: `at` seconds on its time axis, what happened, and its kind
    (action, restore, fib)."""

    at: float
    label: str
    kind: str = "action"


@dataclass
class Series:
    """Per bucket of `bucket_s` seconds from `start` (seconds on the chart's axis): answers by
    backend and failed requests, both as counts; `rate()` turns them into per-second values."""

    start: float
    bucket_s: float
    answers: dict[str, list[int]]
    failed: list[int]
    marks: list[Mark] = field(default_factory=list)
    axis: str = "s from the action"  # what the time axis counts

    @property
    def buckets(self) -> int:
        return len(self.failed)

    def rate(self, counts: Sequence[int]) -> list[float]:
        return [c / self.bucket_s for c in counts]

    def to_json(self) -> JsonObject:
        return asdict(self)


def from_samples(
    samples: Iterable[Sample], t0: float, bucket_s: float = 0.25, marks: Iterable[Mark] = ()
) -> Series:
    """Samples bucketed by send time, on an axis of seconds from `t0` (the action)."""
    samples = list(samples)
    if not samples:
        return Series(0.0, bucket_s, {}, [], list(marks))
    lo = min(s.t for s in samples) - t0
    hi = max(s.t for s in samples) - t0
    bucket_s = max(bucket_s, (hi - lo) / MAX_BUCKETS)
    # whole buckets only: a part-filled first or last one would draw a dip nobody saw
    start = bucket_s * math.ceil(lo / bucket_s)
    n = max(1, int((hi - start) // bucket_s))
    answers: dict[str, list[int]] = {}
    failed = [0] * n
    for s in samples:
        i = int((s.t - t0 - start) // bucket_s)
        if not 0 <= i < n:
            continue
        if s.error is None:
            answers.setdefault(s.backend or "unknown", [0] * n)[i] += 1
        else:
            failed[i] += 1
    return Series(start, bucket_s, dict(sorted(answers.items())), failed, list(marks))


def from_seconds(
    seconds: Sequence[tuple[Counter, int]], start: float, marks: Iterable[Mark] = (), axis: str = ""
) -> Series:
    """Per-second (answers by backend, failures), as the dashboard keeps them."""
    backends = sorted({b for answers, _ in seconds for b in answers})
    return Series(
        start,
        1.0,
        {b: [int(a.get(b, 0)) for a, _ in seconds] for b in backends},
        [int(f) for _, f in seconds],
        list(marks),
        axis or "s",
    )
