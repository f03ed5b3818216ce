"""What the dashboard tests share: an app on fixed data, the screen's text as drawn, and one
way to wait for something to be true (bounded, scaled with the machine's load)."""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from ecmptui import config
from ecmptui.app import EcmpApp
from ecmptui.cockpit import LocalCockpit
from ecmptui.deployment.status import NodeStatus
from ecmptui.waits import scaled


def make_app(tmp_path: Path, screen: str = "traffic", read_only: bool = False) -> EcmpApp:
    """A dashboard that polls nothing (`live=False`): tests hand it fixed data."""
    cfg = tmp_path / "config.toml"
    cfg.write_text('target = "lab"\nlab = "ecmp"\n')
    return EcmpApp(
        LocalCockpit(config.load(cfg, env={}), read_only=read_only), live=False, start_mode=screen
    )


def drawn(app: Any) -> str:
    """The text of the screen as drawn now (what a user would read)."""
    text = re.sub(r"<[^>]+>", "", app.export_screenshot())
    return html.unescape(text).replace("\xa0", " ")


async def until(
    pilot: Pilot[Any], predicate: Callable[[], Any], what: str, timeout: float = 10.0
) -> Any:
    """Wait until `predicate()` is true (its value), letting the app run; fail after
    `timeout` seconds (scaled with the machine's load) naming `what` it waited for."""
    deadline = time.monotonic() + scaled(timeout)
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(0.05)
        await pilot.pause()
    return value


def seen(app: EcmpApp, name: str) -> NodeStatus | None:
    """Node `name` in the app's status, if there is a status and it has that node."""
    return app.status.node(name) if app.status is not None else None


def node_of(app: EcmpApp, name: str) -> NodeStatus:
    """Node `name` in the app's status (which must have it)."""
    n = seen(app, name)
    assert n is not None, f"{name} is not in the status"
    return n
