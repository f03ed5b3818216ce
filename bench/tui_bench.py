"""Dashboard cost: CPU and memory of the app process with the Traffic screen at 200 req/s
(the prober's own process counted separately), and key press to screen switch.

Run as root: .venv/bin/python bench/tui_bench.py [--soak MINUTES]
(own lab `ecmpb`, the app in tmux; --soak keeps it running and samples its memory every
minute, then measures the CPU again)
Goals (issues 5 and 16): app CPU <= 15% of one core; RSS <= 120 MB after an hour, and flat;
key press to a redrawn screen <= 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import LAB, cli, cpu_seconds, lab_config, rss_mb

from ecmptui.lab import control


def find_pid(pattern: str, timeout: float = 10) -> int:
    """The Python process (not the shell tmux wraps it in) whose command line matches."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
        for pid in map(int, out.split()):
            try:
                if Path(f"/proc/{pid}/comm").read_text().startswith("python"):
                    return pid
            except OSError:
                continue
        time.sleep(0.1)
    raise SystemExit(f"no process matching {pattern!r}")


async def switch_latency(cfg: Path) -> tuple[float, float]:
    from textual import events

    from ecmptui import config
    from ecmptui.app import EcmpApp
    from ecmptui.cockpit import LocalCockpit
    from ecmptui.screens.bgp import BgpScreen
    from ecmptui.screens.traffic import TrafficScreen

    app = EcmpApp(LocalCockpit(config.load(cfg)), rate=200)
    times = []
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(3)
        for key, screen in (("b", BgpScreen), ("t", TrafficScreen)) * 5:
            # the key goes through the app's own key handling, as a typed key does
            t0 = time.perf_counter()
            app.post_message(events.Key(key, key))
            while not (isinstance(app.screen, screen) and app.screen.is_current):
                await asyncio.sleep(0.001)
            times.append(time.perf_counter() - t0)
            await pilot.pause(0.3)
        await pilot.press("q")
    times.sort()
    return times[len(times) // 2] * 1000, times[-1] * 1000


def soak(app_pid: int, minutes: int) -> list[tuple[int, float, float]]:
    """(minute, RSS MB, CPU % over that minute) once a minute while the app runs on."""
    rows = []
    c0 = cpu_seconds(app_pid)
    for minute in range(1, minutes + 1):
        time.sleep(60)
        c1 = cpu_seconds(app_pid)
        rows.append((minute, rss_mb(app_pid), (c1 - c0) / 60 * 100))
        c0 = c1
        print(
            f"minute {minute:3}: RSS {rows[-1][1]:6.1f} MB, CPU {rows[-1][2]:5.1f}%",
            file=sys.stderr,
            flush=True,
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--soak",
        type=int,
        default=0,
        metavar="MINUTES",
        help="keep the app running this long, sampling its memory each minute",
    )
    args = ap.parse_args()
    rows: list[tuple[int, float, float]] = []
    if not shutil.which("tmux"):
        raise SystemExit("tmux is needed (apt-get install tmux)")
    control.down(LAB)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = lab_config(Path(tmp))
        try:
            control.up(LAB, port=0)
            cli(cfg, "provision")
            app = f"cd / && {sys.executable} -m ecmptui --config {cfg} --rate 200"
            subprocess.run(
                ["tmux", "new-session", "-d", "-s", "ecmptui-bench", "-x", "120", "-y", "40", app],
                check=True,
            )
            app_pid = find_pid(f"ecmptui --config {cfg} --rate 200")
            probe_pid = find_pid("ecmptui probe --jsonl --rate 200")
            time.sleep(5)  # start-up and the first status
            a0, p0, t0 = cpu_seconds(app_pid), cpu_seconds(probe_pid), time.monotonic()
            time.sleep(10)
            dt = time.monotonic() - t0
            app_cpu = (cpu_seconds(app_pid) - a0) / dt * 100
            probe_cpu = (cpu_seconds(probe_pid) - p0) / dt * 100
            rss = rss_mb(app_pid)
            if args.soak:
                rows = soak(app_pid, args.soak)
            subprocess.run(["tmux", "send-keys", "-t", "ecmptui-bench", "q"])
            time.sleep(1)
            subprocess.run(["tmux", "kill-session", "-t", "ecmptui-bench"], capture_output=True)
            switch_med, switch_max = asyncio.run(switch_latency(cfg))
        finally:
            subprocess.run(["tmux", "kill-session", "-t", "ecmptui-bench"], capture_output=True)
            control.down(LAB)
    print(f"{'measure':44} {'value':>8} {'goal':>8}")
    for name, value, goal, _unit in [
        ("app CPU, Traffic screen, 200 req/s (% core)", app_cpu, 15, "%"),
        ("prober CPU, separate process (% core)", probe_cpu, None, "%"),
        ("app RSS (MB)", rss, 120, "MB"),
        ("key press to screen switch, median (ms)", switch_med, 100, "ms"),
        ("key press to screen switch, worst of 10 (ms)", switch_max, None, "ms"),
    ]:
        verdict = "" if goal is None else ("ok" if value <= goal else "OVER")
        print(f"{name:44} {value:8.1f} {goal if goal is not None else '-':>8}  {verdict}")
    if rows:
        print(f"\nsoak, {len(rows)} min at 200 req/s: minute, RSS MB, CPU % of a core")
        for minute, mb, cpu in rows:
            if minute in (1, 2, 5, 10) or minute % 10 == 0 or minute == len(rows):
                print(f"{minute:6} {mb:8.1f} {cpu:6.1f}")
        half = len(rows) // 2
        growth = rows[-1][1] - rows[half][1] if half else 0.0
        print(
            f"RSS growth over the second half: {growth:+.1f} MB (flat: within +-5 MB); "
            f"after {len(rows)} min {rows[-1][1]:.1f} MB (goal <= 120)"
        )


if __name__ == "__main__":
    main()
