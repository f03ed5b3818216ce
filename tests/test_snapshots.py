"""Every screen with fixed data, at 80x24 and 200x50 (pytest-textual-snapshot), drawn first
and then updated with longer values, as a live dashboard is."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from ecmptui.app import EcmpApp
from fixed_data import prime, provision_events, update_after_first_draw
from tui import make_app

SIZES = [(80, 24), (200, 50)]


pytestmark = pytest.mark.usefixtures("utc")


async def _prime(pilot: Pilot[None]) -> None:
    prime(pilot.app)
    await pilot.pause()
    screen = pilot.app.screen
    if hasattr(screen, "apply_event"):
        for ev in provision_events():
            screen.apply_event(ev)
    app = pilot.app
    assert isinstance(app, EcmpApp)
    app.publish()
    await pilot.pause()
    update_after_first_draw(app)  # what arrives after the first frame
    app.publish()
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("screen", ["provision", "bgp", "traffic"])
def test_screen(snap_compare: Callable[..., bool], tmp_path: Path, screen: Any, size: int) -> None:
    assert snap_compare(make_app(tmp_path, screen), terminal_size=size, run_before=_prime)


def test_traffic_read_only(snap_compare: Callable[..., bool], tmp_path: Path) -> None:
    assert snap_compare(
        make_app(tmp_path, "traffic", read_only=True), terminal_size=(80, 24), run_before=_prime
    )


def test_help(snap_compare: Callable[..., bool], tmp_path: Path) -> None:
    async def open_help(pilot: Pilot[None]) -> None:
        await _prime(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(make_app(tmp_path, "traffic"), terminal_size=(80, 24), run_before=open_help)
