"""Probe samples and their statistics: shared by the prober, the analysis and the dashboard
(without the HTTP client, so the dashboard starts fast)."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from ecmptui.jsonish import JsonObject


@dataclass(frozen=True)
class Sample:
    """One request: when it was sent (monotonic s), who answered or how it failed."""

    t: float
    backend: str | None
    error: str | None  # refused | reset | timeout | http_<status> | other
    latency_ms: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Sample:
        d = json.loads(line)
        return cls(float(d["t"]), d.get("backend"), d.get("error"), float(d["latency_ms"]))


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[k]


def summarize(samples: Iterable[Sample], elapsed: float | None = None) -> JsonObject:
    """The `probe --json` summary."""
    samples = list(samples)
    ok = [s for s in samples if s.error is None]
    lat = [s.latency_ms for s in ok]
    if elapsed is None and samples:
        elapsed = max(samples[-1].t - samples[0].t, 1e-9)
    return {
        "requests": len(samples),
        "failed": len(samples) - len(ok),
        "by_backend": dict(sorted(Counter(s.backend or "unknown" for s in ok).items())),
        "errors": dict(sorted(Counter(s.error for s in samples if s.error).items())),
        "rate": round(len(samples) / elapsed, 1) if elapsed else 0.0,
        "latency_ms": {"p50": _round(percentile(lat, 50)), "p99": _round(percentile(lat, 99))},
    }


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 2)
