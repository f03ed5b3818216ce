"""Small text helpers shared by the CLI and the dashboard (no I/O, quick to import)."""

from __future__ import annotations


def health_label(h: dict | None) -> str:
    """A node's health check in one word: up, down, stopped, not running, or "-" (none)."""
    if not h:
        return "-"
    return h.get("state", "?") if h.get("alive", True) else "not running"
