"""The dashboard's workers against a cockpit built from fixed data (no lab, no root)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from textual.message import Message

from ecmptui import config
from ecmptui.app import EcmpApp
from ecmptui.cockpit import LocalCockpit
from ecmptui.screens.dialogs import ConfirmScreen
from ecmptui.screens.messages import StatusReady
from fixed_data import STATUS


class SlowCockpit(LocalCockpit):
    """Answers `status` with fixed data after `delay` seconds, like a loaded deployment."""

    def __init__(self, settings: Any, delay: float) -> None:
        super().__init__(settings)
        self.delay, self.started, self.finished = delay, 0, 0

    def lab_up(self) -> bool:
        return True

    def project_label(self) -> str:
        return "fixed"

    async def status(self) -> Any:
        self.started += 1
        await asyncio.sleep(self.delay)
        self.finished += 1
        return STATUS

    async def close(self) -> None:
        pass


def _cockpit(tmp_path: Path, delay: float) -> SlowCockpit:
    cfg = tmp_path / "config.toml"
    cfg.write_text('target = "lab"\nlab = "ecmp"\n')
    return SlowCockpit(config.load(cfg, env={}), delay)


async def test_a_status_slower_than_the_poll_interval_still_lands(tmp_path: Path) -> None:
    cockpit = _cockpit(tmp_path, delay=1.6)  # the app polls every second
    app = EcmpApp(cockpit)
    app.paused = True  # no prober in this test
    landed = asyncio.Event()

    def hook(message: Message) -> None:
        if isinstance(message, StatusReady) and message.status is not None:
            landed.set()

    async with app.run_test(message_hook=hook) as pilot:
        await asyncio.wait_for(landed.wait(), 6)
        await pilot.pause()
        assert app.status is STATUS
        # polls that came due while one was in flight were skipped, not stacked or cancelled
        assert cockpit.finished >= 1 and cockpit.started - cockpit.finished <= 1


async def test_deprovision_is_refused_while_a_provisioning_job_runs(tmp_path: Path) -> None:
    app = EcmpApp(_cockpit(tmp_path, delay=0.0), live=False)
    async with app.run_test() as pilot:
        app.job_running = True
        app.confirm_deprovision()
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("provisioning job is running" in str(n.message) for n in app._notifications)
        app.job_running = False
        app.confirm_deprovision()
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
