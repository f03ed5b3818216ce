"""The traffic panel's numbers, without any UI: per-second answers by backend over the last
minute, shares, rate, errors, latency, and a timeline of actions with their measured cost."""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ecmptui.actions import ACTIONS
from ecmptui.jsonish import JsonObject
from ecmptui.traffic.failover import analyse, first_answer_ms, steady_since
from ecmptui.traffic.flows import FlowEvent, disruption, flows_on
from ecmptui.traffic.samples import Sample, percentile


@dataclass
class ActionRecord:
    """One action taken on a node while probing, and what it cost."""

    t: float
    node: str
    action: str
    outcome: str = "running"  # running | done | failed: <why>
    # withdraw/faults: watch convergence; announce/restore: recovery
    takes_node_out: bool = True
    convergence_ms: float | None = None
    recovery_ms: float | None = None
    failed: dict[str, int] = field(default_factory=dict)
    settled: bool = False
    source: str = "operator"  # operator | health (a node's own health check)
    fib_ms: float | None = None  # lab: when the fabric's route for the EIP changed
    by: str | None = None  # who asked (a served session's user name)
    seq: int = 0  # its number in this model's timeline
    note: str | None = None  # an action that reports its own result (a drain)
    flows: JsonObject | None = None  # with long-lived flows: what the action broke
    done_at: float | None = None  # when it was first seen done (flows are counted after)

    def summary(self) -> str:
        return self._summary() + (flows_words(self.flows) if self.flows else "")

    def _summary(self) -> str:
        if self.outcome.startswith("failed"):
            return self.outcome
        if self.note is not None:
            return self.note
        if not self.settled:
            return "measuring…"
        fails = sum(self.failed.values())
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.failed.items()))
        fib = "" if self.fib_ms is None else f", FIB +{self.fib_ms:.1f} ms"
        if self.takes_node_out:
            # what matters most first: a narrow timeline cuts from the right
            conv = "not steady" if self.convergence_ms is None else f"{self.convergence_ms:.0f} ms"
            return f"failed {fails}" + (f" ({kinds})" if kinds else "") + f", converged {conv}{fib}"
        rec = "no answer yet" if self.recovery_ms is None else f"{self.recovery_ms:.0f} ms"
        return f"answering again after {rec}"


TAKES_OUT = {a.name for a in ACTIONS.values() if a.out_of_service}
FLOW_WINDOW_S = 3.0  # after an action, how long its flows have to break


def flows_words(f: JsonObject) -> str:
    """An action's flow disruption, for the timeline."""
    return (
        f"; flows broken: {f['affected']}/{f['on_node']} on the node, "
        f"{f['bystanders']}/{f['flows'] - f['on_node']} elsewhere"
    )


HISTORY_S = 900  # what the chart can scroll back and zoom over (15 min)
MAX_TIMELINE = 500  # actions kept in the timeline (the oldest go first)


@dataclass(frozen=True)
class BackendStats:
    """One backend's answers over the last few seconds."""

    rate: float  # answers per second
    p50: float | None  # latency, ms
    p99: float | None


@dataclass(frozen=True)
class TrafficStats:
    """What the prober saw over the last few seconds."""

    rate: float  # requests per second
    shares: dict[str, float]  # of the answers, by backend (0..1)
    errors: dict[str, int]  # failed requests by kind
    p50: float | None  # latency of the answers, ms
    p99: float | None
    per_backend: dict[str, BackendStats]


class TrafficModel:
    """Rolling view of probe samples. Feed `add()`; read the properties. Everything it keeps
    is bounded: samples for a minute, per-second counts for `history_s`, the last
    MAX_TIMELINE actions."""

    def __init__(
        self,
        window_s: int = 60,
        timeout_s: float = 1.0,
        settle_s: float = 1.0,
        limit_s: float = 10.0,
        history_s: int = HISTORY_S,
    ) -> None:
        self.window_s, self.timeout_s = window_s, timeout_s
        self.settle_s, self.limit_s = settle_s, limit_s
        self.history_s = max(history_s, window_s)
        self.samples: deque[Sample] = deque()
        self.timeline: deque[ActionRecord] = deque(maxlen=MAX_TIMELINE)
        self.backends: list[str] = []  # in order of first appearance
        # per whole second of send time: [answers by backend, failures], kept as they come
        self._seconds: dict[int, list] = {}
        self._seq = 0
        self.flow_events: deque[FlowEvent] = deque(maxlen=20000)  # with flows

    def add_flow(self, ev: FlowEvent) -> None:
        self.flow_events.append(ev)

    def reset(self) -> None:
        """Forget the traffic (the deployment went away); the timeline stays."""
        self.samples.clear()
        self.flow_events.clear()
        self._seconds.clear()
        self.backends = []

    def add(self, s: Sample) -> None:
        self.samples.append(s)
        if s.backend and s.backend not in self.backends:
            self.backends.append(s.backend)
        slot = self._seconds.setdefault(int(s.t), [Counter(), 0])
        if s.error is None:
            slot[0][s.backend or "unknown"] += 1
        else:
            slot[1] += 1

    def prune(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        keep = max(self.window_s, self.limit_s + self.timeout_s + 2)
        while self.samples and self.samples[0].t < now - keep:
            self.samples.popleft()
        for sec in [k for k in self._seconds if k < now - self.history_s - 1]:
            del self._seconds[sec]

    def buckets(
        self, now: float | None = None, span_s: int | None = None, back_s: int = 0
    ) -> list[tuple[Counter, int]]:
        """One (answers by backend, failures) per second, oldest first, `span_s` of them
        (default `window_s`) ending `back_s` seconds ago; the current (incomplete) second
        is left out."""
        now = time.monotonic() if now is None else now
        end = int(now) - max(0, back_s)
        out: list[tuple[Counter, int]] = []
        for sec in range(end - (span_s or self.window_s), end):
            slot = self._seconds.get(sec)
            out.append((slot[0], slot[1]) if slot else (Counter(), 0))
        return out

    def recorded_s(self, now: float | None = None) -> int:
        """How many seconds of history there are to scroll back over."""
        now = time.monotonic() if now is None else now
        return int(now) - min(self._seconds, default=int(now))

    def recent(self, seconds: float = 5.0, now: float | None = None) -> list[Sample]:
        """Samples sent in the `seconds` before the last `timeout_s` (their fate is known).
        Samples arrive in completion order, which lags send order by at most a timeout."""
        now = time.monotonic() if now is None else now
        lo, hi = now - seconds - self.timeout_s, now - self.timeout_s
        out = []
        for s in reversed(self.samples):
            if s.t < lo - self.timeout_s - 1:
                break
            if lo <= s.t < hi:
                out.append(s)
        out.reverse()
        return out

    def stats(self, seconds: float = 5.0, now: float | None = None) -> TrafficStats:
        """Rate, shares, errors by kind and latency over the last few seconds (ignoring
        requests that may still be in flight)."""
        recent = self.recent(seconds, now)
        ok = [s for s in recent if s.error is None]
        by_backend = Counter(s.backend or "unknown" for s in ok)
        total_ok = sum(by_backend.values())
        by_lat: dict[str, list[float]] = {}
        for s in ok:
            by_lat.setdefault(s.backend or "unknown", []).append(s.latency_ms)
        lat = [s.latency_ms for s in ok]
        return TrafficStats(
            rate=len(recent) / seconds,
            shares={b: by_backend[b] / total_ok for b in by_backend} if total_ok else {},
            errors=dict(Counter(s.error for s in recent if s.error)),
            p50=percentile(lat, 50),
            p99=percentile(lat, 99),
            per_backend={
                b: BackendStats(len(v) / seconds, percentile(v, 50), percentile(v, 99))
                for b, v in by_lat.items()
            },
        )

    # -- actions ---------------------------------------------------------------------------
    def begin(
        self, node: str, action: str, source: str = "operator", t: float | None = None
    ) -> ActionRecord:
        self._seq += 1
        rec = ActionRecord(
            time.monotonic() if t is None else t,
            node,
            action,
            takes_node_out=action in TAKES_OUT,
            source=source,
            seq=self._seq,
        )
        self.timeline.append(rec)
        return rec

    def settle(
        self, now: float | None = None, fib_ms: Callable[[float], float | None] | None = None
    ) -> list[ActionRecord]:
        """Measure pending actions whose outcome is known now; returns the ones settled.
        `fib_ms(t)` (the lab): ms from `t` to the fabric's FIB change, for an operator's
        action that took a node out."""
        now = time.monotonic() if now is None else now
        done = []
        for rec in self.timeline:
            if rec.settled or rec.outcome != "done":
                continue
            age = now - rec.t
            if rec.takes_node_out:
                steady = age > self.settle_s + self.timeout_s and steady_since(
                    list(self.samples), now, self.settle_s, rec.node, self.timeout_s
                )
                if steady or age > self.limit_s + self.timeout_s:
                    # steady_since has just seen a clean window; asking analyse for the same
                    # length again would miss by a sample at the window's edge
                    fo = analyse(
                        list(self.samples),
                        rec.t,
                        rec.node,
                        until=now - self.timeout_s,
                        min_tail_s=0.0 if steady else self.settle_s,
                    )
                    rec.convergence_ms, rec.failed = fo.convergence_ms, fo.failed
                    rec.settled = True
            else:
                rec.recovery_ms = first_answer_ms(list(self.samples), rec.t, rec.node)
                if rec.recovery_ms is not None or age > self.limit_s:
                    rec.settled = True
            if rec.settled:
                if fib_ms is not None and rec.takes_node_out and rec.source == "operator":
                    rec.fib_ms = fib_ms(rec.t)
                done.append(rec)
        for rec in self.timeline:  # flows are counted once they had time to break
            if rec.outcome != "done" or rec.flows is not None or not self.flow_events:
                continue
            if rec.done_at is None:
                rec.done_at = now
            # from the command's start until FLOW_WINDOW_S after it returned: a slow
            # command (a loaded node, SSH) must not cut the flows it broke out of the count
            end = max(rec.t, rec.done_at) + FLOW_WINDOW_S
            if rec.settled and now > end:
                events = list(self.flow_events)
                rec.flows = disruption(events, rec.t, end, rec.node, len(flows_on(events, rec.t)))
        return done
