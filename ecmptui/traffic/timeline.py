"""What happened, for the dashboard and the SSH demo's feed alike: the BGP log (status
changes as lines, in time order) and the action timeline's records (an action from the
moment its command ran to its outcome)."""

from __future__ import annotations

import bisect
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from ecmptui.deployment.status import DeploymentStatus, EventKind, diff
from ecmptui.display import event_line
from ecmptui.traffic.model import ActionRecord, TrafficModel

MAX_EVENTS = 2000  # the BGP log keeps this many lines


@dataclass(frozen=True)
class LogEntry:
    """One line of the BGP log: when it happened (wall time) and what."""

    seq: int
    at: float
    text: str


class EventLog:
    """The BGP log: bounded, in time order (BIRD's own time for a change can be older than
    lines already logged: such a line is put in its place)."""

    def __init__(self, maxlen: int = MAX_EVENTS) -> None:
        self._entries: deque[LogEntry] = deque(maxlen=maxlen)
        self.seq = 0  # the newest entry's number (changes whenever a line lands)

    def add(self, at: float, text: str) -> None:
        self.seq += 1
        entry = LogEntry(self.seq, at, text)
        if self._entries and at < self._entries[-1].at:
            items = list(self._entries)
            bisect.insort(items, entry, key=lambda e: (e.at, e.seq))
            self._entries.clear()
            self._entries.extend(items)
        else:
            self._entries.append(entry)

    def __iter__(self) -> Iterator[LogEntry]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, i: int) -> LogEntry:
        return self._entries[i]


def record_changes(
    log: EventLog,
    traffic: TrafficModel,
    old: DeploymentStatus | None,
    new: DeploymentStatus,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
) -> None:
    """Log what changed between two snapshots; a node's own health check withdrawing or
    announcing it goes on the timeline too, measured from when its check changed (a
    withdraw from when the service began failing: the check needed `fall` failed probes to
    act, and the requests refused meanwhile count too)."""
    for ev in diff(old, new):
        at = ev.at or wall()
        log.add(at, event_line(ev))
        if ev.kind is EventKind.HEALTH and ev.old is not None and ev.new in ("down", "up"):
            assert ev.node is not None
            down = ev.new == "down"
            t = clock() - max(0.0, wall() - at)
            h = node.health if (node := new.node(ev.node)) is not None else None
            if down and h is not None and h.interval_ms and h.fall:
                t -= h.interval_ms * h.fall / 1000
            action = "withdraw" if down else "announce"  # what the check did to the EIP
            traffic.begin(ev.node, action, source="health", t=t).outcome = "done"


async def run_recorded(
    traffic: TrafficModel | None,
    node: str,
    action: str,
    run: Callable[[Callable[[float], None]], Awaitable[str]],
    *,
    by: str | None = None,
    on_change: Callable[[ActionRecord], None] | None = None,
) -> str:
    """Run an action with its timeline record: `run(on_effect)` does it and calls
    `on_effect(t)` when its command runs (the record is measured from then, not from the
    click); the record ends `done` or `failed: <why>` (the error goes on up). Without a
    model (a served session: the server keeps the record), it just runs."""
    if traffic is None:
        return await run(lambda _t: None)
    rec = traffic.begin(node, action)
    rec.by = by
    changed = on_change or (lambda _r: None)
    changed(rec)

    def effect(t: float) -> None:
        rec.t = t
        changed(rec)

    try:
        outcome = await run(effect)
    except Exception as exc:
        rec.outcome = f"failed: {exc}"
        changed(rec)
        raise
    rec.outcome = "done"
    changed(rec)
    return outcome
