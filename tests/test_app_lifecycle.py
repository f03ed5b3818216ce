"""The dashboard when the lab itself comes and goes: `lab down` under the open app is shown
as such (no crash), L starts it again; `lab up` picks a free port when 7443 is taken.
Its own lab instance (`ecmpd`), so the shared lab is never taken down."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable

from conftest import run_cli
from ecmptui import config
from ecmptui.app import EcmpApp
from ecmptui.cockpit import LocalCockpit
from ecmptui.lab import control
from ecmptui.lab.instance import LabInstance
from tui import drawn, until

pytestmark = pytest.mark.lab
LAB = LabInstance("ecmpd")


@pytest.fixture
def own_lab() -> Iterator[Any]:
    control.down(LAB)
    try:
        yield LAB
    finally:
        control.down(LAB)


async def test_lab_down_under_the_dashboard_and_back(own_lab: Any, tmp_path: Path) -> None:
    # 7443 taken (by us, or by anything else): `lab up` picks another and says so
    holder = socket.socket()
    try:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 7443))
        holder.listen()
    except OSError:
        pass  # already taken by something else: just as good
    try:
        up = run_cli("--lab", LAB.name, "lab", "up", timeout=300)
    finally:
        holder.close()
    assert up.returncode == 0, up.stderr
    assert "port 7443 was taken: a free one was picked" in up.stdout
    info = control.read_info(LAB)
    assert info is not None and ":7443" not in info.endpoint

    cfg = tmp_path / "config.toml"
    cfg.write_text(f'target = "lab"\nlab = "{LAB.name}"\n')
    app = EcmpApp(LocalCockpit(config.load(cfg, env={})), rate=20)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.status is not None, "the first status", timeout=30)
        await until(pilot, lambda: "Nothing is provisioned yet" in drawn(app), "what next")
        down = run_cli("--lab", LAB.name, "lab", "down", timeout=120)
        assert down.returncode == 0, down.stderr
        await until(pilot, lambda: app.lab_down, "the dashboard to see the lab go", timeout=10)
        await until(
            pilot,
            lambda: f"The lab {LAB.name} is down. Press L to start it" in drawn(app),
            "how to start it",
        )
        assert app.is_running
        await pilot.press("L")
        await until(
            pilot,
            lambda: not app.lab_down and app.status is not None,
            "the lab started from the dashboard",
            timeout=300,
        )
        assert control.read_info(LAB) is not None
        await pilot.press("q")
    assert app.return_code in (0, None)


async def test_twelve_nodes_keep_their_names_and_colours(own_lab: Any, tmp_path: Path) -> None:
    """A 12-node deployment: every node has its full name, its own colour and glyph, and
    each one answers."""
    from ecmptui.screens.chart import style_for

    control.up(LAB, port=0)
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'target = "lab"\nlab = "{LAB.name}"\n[provision]\nnodes = 12\n'
        f'hostname_prefix = "ecmp-node"\n[ssh]\nkey = "{tmp_path}/id"\n'
        f'known_hosts = "{tmp_path}/kh"\n'
    )
    prov = run_cli("--config", str(cfg), "provision", timeout=900)
    assert prov.returncode == 0, prov.stderr
    app = EcmpApp(LocalCockpit(config.load(cfg, env={})), rate=200)
    names = [f"ecmp-node{i}" for i in range(1, 13)]
    async with app.run_test(size=(160, 50)) as pilot:
        await until(
            pilot,
            lambda: (
                app.status is not None
                and len(app.status.nodes) == 12
                and all(n.established for n in app.status.nodes)
            ),
            "12 nodes Established",
            timeout=60,
        )
        await until(
            pilot,
            lambda: set(app.traffic.backends) == set(names),
            "answers from all 12",
            timeout=60,
        )
        await until(pilot, lambda: all(f"{n} " in drawn(app) for n in names), "every name")
        text = drawn(app)
        for name in names:
            assert f"{name} " in text, f"{name} cut or missing"
        assert len({style_for(n) for n in app.traffic.backends}) == 12
        table = app.screen.query_one("#nodes", DataTable)
        assert [k.value for k in table.rows] == names
        await pilot.press("q")
