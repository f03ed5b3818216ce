"""Every screen with fixed data, at 80x24 and 200x50 (pytest-textual-snapshot), drawn first
and then updated with longer values, as a live dashboard is."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from ecmptui import config
from ecmptui.app import EcmpApp
from ecmptui.cockpit import Cockpit
from fixed_data import prime, provision_events, update_after_first_draw

SIZES = [(80, 24), (200, 50)]


pytestmark = pytest.mark.usefixtures("utc")


def make_app(tmp_path: Path, screen: str, read_only: bool = False) -> EcmpApp:
    cfg = tmp_path / "config.toml"
    cfg.write_text('target = "lab"\nlab = "ecmp"\n')
    app = EcmpApp(
        Cockpit(config.load(cfg, env={}), read_only=read_only), live=False, start_mode=screen
    )
    return app


async def _prime(pilot: Pilot[None]) -> None:
    prime(pilot.app)
    await pilot.pause()
    screen = pilot.app.screen
    if hasattr(screen, "apply_event"):
        for ev in provision_events():
            screen.apply_event(ev)
    screen.refresh_view()
    await pilot.pause()
    update_after_first_draw(pilot.app)  # what arrives after the first frame
    screen.refresh_view()
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
