"""Regenerate docs/screenshots/*.svg from the snapshot tests' fixed data.

    .venv/bin/python docs/screenshots.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from ecmptui import config  # noqa: E402
from ecmptui.app import EcmpApp  # noqa: E402
from ecmptui.cockpit import LocalCockpit  # noqa: E402
from fixed_data import prime, provision_events, update_after_first_draw  # noqa: E402


async def shoot(screen: str, size: tuple[int, int], name: str) -> None:
    cfg = HERE / "screenshots" / ".config.toml"
    cfg.write_text('target = "lab"\nlab = "ecmp"\n')
    app = EcmpApp(LocalCockpit(config.load(cfg, env={})), live=False, start_mode=screen)
    async with app.run_test(size=size) as pilot:
        prime(app)
        await pilot.pause()
        if screen == "provision":
            for ev in provision_events():
                app.screen.apply_event(ev)
        app.publish()
        await pilot.pause()
        update_after_first_draw(app)
        app.publish()
        await pilot.pause()
        app.save_screenshot(str(HERE / "screenshots" / f"{name}.svg"))
    cfg.unlink()


def main() -> None:
    os.environ["TZ"] = "UTC"
    time.tzset()
    for screen in ("traffic", "bgp", "provision"):
        asyncio.run(shoot(screen, (120, 36), screen))
    print("wrote", ", ".join(sorted(p.name for p in (HERE / "screenshots").glob("*.svg"))))


if __name__ == "__main__":
    main()
