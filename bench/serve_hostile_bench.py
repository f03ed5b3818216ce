"""`ecmptui serve` under a hostile client (issue 23): the serve process's memory through what
a stranger with the demo password can send. Prints RSS before, during and after; asserts
nothing.

Run: .venv/bin/python bench/serve_hostile_bench.py [--stall S]   (no lab needed)
Goal: RSS within 20 MB of its idle figure through each load, and back after disconnect.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import asyncssh

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import rss_mb

from serving import ONE_MACHINE, Collect, Served

PASSWORD = "correct horse battery"


async def env_flood(s: Served) -> None:
    env = {f"X{i}": "v" * 2048 for i in range(20000)}
    async with s.connect("viewer") as conn:
        chans = []
        for _ in range(3):  # kept open: a connection whose last terminal ends is closed
            chan, _ = await conn.create_session(
                asyncssh.SSHClientSession, term_type="xterm", env=env, encoding=None
            )
            chans.append(chan)
        await asyncio.sleep(1)
        print(f"  20,000 env requests of 2 KB on each of 3 channels: {rss_mb(s.proc.pid):.0f} MB")


async def stalled_viewers(s: Served, seconds: float) -> None:
    async with s.connect("viewer") as a, s.connect("viewer") as b:
        sessions = []
        for conn in (a, a, b):
            sessions.append(
                await conn.create_session(
                    Collect, term_type="xterm-256color", term_size=(500, 200), encoding=None
                )
            )
        await sessions[0][1].wait_for(b"is not up", 30)
        for chan, _ in sessions:
            chan.pause_reading()
        started, n, peak = time.monotonic(), 0, 0.0
        while time.monotonic() - started < seconds:
            for chan, _ in sessions:  # each resize redraws 500x200: output nobody reads
                chan.change_terminal_size(500 - n % 2, 200)
            n += 1
            peak = max(peak, rss_mb(s.proc.pid))
            await asyncio.sleep(0.1)
        print(f"  3 viewers at 500x200 not reading for {seconds:.0f} s: {peak:.0f} MB at most")


async def resize_storm(s: Served) -> None:
    async with s.connect("viewer") as conn:
        chan, _ = await conn.create_session(
            asyncssh.SSHClientSession, term_type="xterm", term_size=(80, 24), encoding=None
        )
        started, n = time.monotonic(), 0
        while n < 34000 and time.monotonic() - started < 10:
            for _ in range(200):
                chan.change_terminal_size(9000 + n % 5, 9000)
                n += 1
            await asyncio.sleep(0)
        await asyncio.sleep(1)
        print(
            f"  {n} window changes in {time.monotonic() - started:.1f} s: "
            f"{rss_mb(s.proc.pid):.0f} MB, log {s.logs().count('resize-clamped')} "
            "resize line(s)"
        )


async def refused_sessions(s: Served) -> None:
    conns = []
    for _ in range(400):
        conn = await s.connect("viewer")
        await conn.create_session(asyncssh.SSHClientSession, encoding=None)  # no terminal
        conns.append(conn)
    await asyncio.sleep(3)
    still = sum(1 for c in conns if not c.is_closed())
    print(
        f"  400 connections whose session was refused: {rss_mb(s.proc.pid):.0f} MB, "
        f"{still} still open 3 s later"
    )
    for c in conns:
        c.close()


async def main(stall: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        cfg = tmp_path / "down.toml"
        cfg.write_text('target = "lab"\nlab = "zz9"\n')
        s = Served(
            tmp_path,
            cfg,
            "--max-viewers",
            "25",
            *ONE_MACHINE,
            env={"ECMPTUI_DEMO_PASSWORD": PASSWORD},
        )
        try:
            await asyncio.sleep(2)
            idle = rss_mb(s.proc.pid)
            print(f"serve idle: {idle:.0f} MB")
            for load in (
                env_flood(s),
                stalled_viewers(s, stall),
                resize_storm(s),
                refused_sessions(s),
            ):
                await load
                await asyncio.sleep(2)
                print(
                    f"    after disconnect: {rss_mb(s.proc.pid):.0f} MB "
                    f"({rss_mb(s.proc.pid) - idle:+.0f} MB of idle)"
                )
        finally:
            s.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--stall",
        type=float,
        default=180.0,
        metavar="S",
        help="how long the viewers stop reading (default 180 s)",
    )
    asyncio.run(main(parser.parse_args().stall))
