"""Parsing `ip -ts monitor route` lines (no lab, no root)."""

from __future__ import annotations

import datetime as dt

from ecmptui.lab.fibwatch import FibWatch


def _line(t: float, text: str) -> str:
    stamp = dt.datetime.fromtimestamp(t).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return f"[{stamp}] {text}\n"


def test_changes_of_our_route_are_timed_on_the_monotonic_clock() -> None:
    w = FibWatch("lab-fabric", "203.0.113.10")
    wall = 1795718000.25
    t = w.parse(_line(wall, "203.0.113.10 via 198.18.12.2 dev rt-s2 proto bird metric 32"))
    assert t is not None and abs((t + w._offset) - wall) < 1e-3
    deleted = w.parse(_line(wall + 1, "Deleted 203.0.113.10 proto bird metric 32"))
    assert deleted is not None and abs(deleted - t - 1.0) < 1e-3


def test_other_routes_and_continuation_lines_are_ignored() -> None:
    w = FibWatch("lab-fabric", "203.0.113.10")
    assert w.parse(_line(1795718000.0, "203.0.113.11 via 198.18.12.2 dev rt-s2")) is None
    assert w.parse(_line(1795718000.0, "203.0.113.100/32 via 198.18.12.2")) is None
    assert w.parse("\tnexthop via 198.18.11.2 dev rt-s1 weight 1\n") is None
    assert w.parse("garbage\n") is None


def test_first_change_after_an_action() -> None:
    w = FibWatch("lab-fabric", "203.0.113.10")
    w.changes = [10.0, 20.0024, 20.5]
    assert w.first_change_after(20.0) == 2.4
    assert w.first_change_after(30.0) is None  # nothing changed after it
    assert w.first_change_after(5.0, within=2.0) is None
