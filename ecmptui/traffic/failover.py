"""Failover analysis: from probe samples and the time of an action, how ECMP converged."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from ecmptui.traffic.samples import Sample


@dataclass
class Failover:
    """What happened after an action that took `affected` out of service.

    - last_affected_ms: the last request (by send time) that `affected` still answered
    - convergence_ms: the last request that failed or reached `affected`; 0 if none did
    - steady_ms: when the clean tail begins (every request answered by the others); None if
      traffic was not steady before the window closed
    - failed: failed requests by kind between the action and steady traffic
    """

    affected: str
    last_affected_ms: float | None
    convergence_ms: float | None
    steady_ms: float | None
    failed: dict[str, int] = field(default_factory=dict)
    before: dict[str, int] = field(default_factory=dict)
    after: dict[str, int] = field(default_factory=dict)

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())


def _ms(dt: float) -> float:
    return round(dt * 1000, 1)


def analyse(
    samples: Sequence[Sample],
    action_t: float,
    affected: str,
    *,
    until: float | None = None,
    before_s: float = 1.0,
    min_tail_s: float = 0.5,
) -> Failover:
    """Analyse samples sent in [action_t, until) (until: end of samples if None)."""
    before = Counter(
        s.backend
        for s in samples
        if action_t - before_s <= s.t < action_t and s.error is None and s.backend is not None
    )
    window = sorted(
        (s for s in samples if s.t >= action_t and (until is None or s.t < until)),
        key=lambda s: s.t,
    )
    bad = [s for s in window if s.error is not None or s.backend == affected]
    from_affected = [s for s in window if s.error is None and s.backend == affected]
    last_affected = _ms(from_affected[-1].t - action_t) if from_affected else None
    if bad:
        last_bad = max(s.t for s in bad)
        tail = [s for s in window if s.t > last_bad]
    else:
        tail = window
    end = until if until is not None else (window[-1].t if window else action_t)
    settled = bool(tail) and end - tail[0].t >= min_tail_s
    steady = convergence = None
    if settled:
        steady = _ms(tail[0].t - action_t) if bad else 0.0
        convergence = _ms(last_bad - action_t) if bad else 0.0
    failed = Counter(s.error for s in window if s.error is not None)
    after = Counter(s.backend for s in tail if s.error is None and s.backend is not None)
    return Failover(
        affected, last_affected, convergence, steady, dict(failed), dict(before), dict(after)
    )


def first_answer_ms(samples: Sequence[Sample], t: float, backend: str) -> float | None:
    """How long after `t` the first request answered by `backend` was sent."""
    sent = [s.t for s in samples if s.t >= t and s.error is None and s.backend == backend]
    return _ms(min(sent) - t) if sent else None


def back_after_ms(samples: Sequence[Sample], t: float, backend: str) -> float | None:
    """When `backend` answered again after its longest silence since `t` (a reboot): the send
    time, after `t`, of the answer that ends the longest gap between its answers."""
    sent = sorted(s.t for s in samples if s.t >= t and s.error is None and s.backend == backend)
    if not sent:
        return None
    edges = [t, *sent]
    gap_end = max(range(1, len(edges)), key=lambda i: edges[i] - edges[i - 1])
    return _ms(edges[gap_end] - t)


def steady_since(
    samples: Sequence[Sample], now: float, window_s: float, affected: str | None, timeout_s: float
) -> bool:
    """True if every request sent in the `window_s` seconds before the last `timeout_s`
    succeeded and none reached `affected`. Newer requests are ignored: one still in flight
    may yet time out, and samples arrive in completion order, not send order."""
    hi = now - timeout_s
    recent = [s for s in samples if hi - window_s <= s.t <= hi]
    return bool(recent) and all(s.error is None and s.backend != affected for s in recent)
