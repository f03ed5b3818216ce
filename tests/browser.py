"""Debian's Chromium, headless, as the HTML reports' reader: a screenshot of the page as it
drew, the DOM it built, and what it logged."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

# Chromium's own complaints about the machine (no D-Bus, no GPU) are not the page's
CONSOLE = re.compile(r"CONSOLE|Uncaught|Failed to load resource|net::ERR_")


@dataclass
class Rendered:
    png: Path
    dom: str
    log: str

    def pixels(self) -> Image.Image:
        return Image.open(self.png).convert("RGB")

    def share_not_white(self) -> float:
        img = self.pixels()
        hist = img.convert("L").histogram()
        return 1 - sum(hist[245:]) / (img.width * img.height)

    def has_colour(self, hex_colour: str, at_least: int = 20, tolerance: int = 40) -> bool:
        """At least `at_least` pixels within `tolerance` of the colour (anti-aliasing)."""
        want = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
        img = self.pixels()
        found = 0
        for count, rgb in img.getcolors(maxcolors=1 << 24) or []:
            assert isinstance(rgb, tuple)
            if all(abs(a - b) <= tolerance for a, b in zip(rgb, want, strict=True)):
                found += count
        return found >= at_least

    def page_errors(self) -> list[str]:
        return [ln for ln in self.log.splitlines() if CONSOLE.search(ln)]


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("chromium not found: run `bash .ci/setup --test` (Debian's chromium)")
    return found


def render(page: Path, workdir: Path, height: int = 2400) -> Rendered:
    """Open `page` in headless Chromium: a screenshot 1200 px wide and `height` tall, its
    DOM, and its log (no network: every host name resolves to nothing)."""
    base = [
        chromium(),
        "--headless",
        "--no-sandbox",  # as root
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        f"--user-data-dir={workdir / 'profile'}",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--enable-logging=stderr",
        "--v=0",
    ]
    png = workdir / (page.stem + ".png")
    shot = subprocess.run(
        [*base, f"--window-size=1200,{min(height, 16000)}", f"--screenshot={png}", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.returncode == 0 and png.exists(), shot.stderr[-2000:]
    dom = subprocess.run(
        [*base, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    return Rendered(png, dom.stdout, shot.stderr + dom.stderr)
