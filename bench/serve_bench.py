"""The SSH-served dashboard: connect to first full frame, memory per session, server CPU
with 20 idle sessions; with --lab, what 1 and 20 viewers cost the service and the server.

Run: .venv/bin/python bench/serve_bench.py   (no lab needed: the sessions show the
"lab is not up" dialog of a lab that does not exist, so they idle like a quiet dashboard)
     .venv/bin/python bench/serve_bench.py --lab   (as root: its own lab `ecmpb`, 2 nodes)
Goals (issues 6 and 15): first frame <= 1 s; <= 60 MB per session; server CPU (20 idle)
<= 5%; 20 viewers on a live deployment: server CPU <= 10% of a core, and the service sees
the load of one prober.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import LAB, cli, lab_config, rss_mb
from common import cpu_seconds as cpu

from serving import ONE_MACHINE, Collect, Served


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        cfg = tmp / "down.toml"
        cfg.write_text('target = "lab"\nlab = "zz9"\n')
        served = Served(tmp, cfg, "--max-viewers", "25", *ONE_MACHINE)
        conns, firsts = [], []
        try:
            for _ in range(20):
                t0 = time.perf_counter()
                conn = await served.connect("viewer")
                chan, sess = await conn.create_session(
                    Collect, term_type="xterm-256color", term_size=(80, 24), encoding=None
                )
                await sess.wait_for(b"Continue without", 10)  # the whole dialog is drawn
                firsts.append(time.perf_counter() - t0)
                conns.append(conn)
            await asyncio.sleep(3)
            children = served.sessions()
            mem = [rss_mb(p) for p in children]
            c0, t0 = cpu(served.proc.pid), time.monotonic()
            await asyncio.sleep(10)
            server_cpu = (cpu(served.proc.pid) - c0) / (time.monotonic() - t0) * 100
        finally:
            for c in conns:
                c.close()
            served.stop()
    print(f"{'measure':46} {'value':>8} {'goal':>6}")
    for name, value, goal in [
        ("connect to first full frame, median (s)", statistics.median(firsts), 1.0),
        ("connect to first full frame, worst of 20 (s)", max(firsts), None),
        ("memory per session, app process RSS (MB)", statistics.median(mem), 60),
        ("server CPU with 20 idle sessions (% core)", server_cpu, 5),
    ]:
        verdict = "" if goal is None else ("ok" if value <= goal else "OVER")
        print(f"{name:46} {value:8.2f} {goal if goal is not None else '-':>6}  {verdict}")


def active_opens() -> int:
    """TCP connections opened from the lab's client namespace (where every probe starts)."""
    out = subprocess.run(
        ["ip", "netns", "exec", LAB.client_ns, "cat", "/proc/net/snmp"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    head, values = [line.split() for line in out.splitlines() if line.startswith("Tcp:")]
    return int(values[head.index("ActiveOpens")])


async def measure(served: Served, seconds: float = 10.0) -> tuple[float, float, float]:
    """New connections/s the service saw, CPU % of the serve process, and of its children
    that are not sessions (the one prober)."""
    helpers = [p for p in served.children() if p not in served.sessions()]
    o0, c0, h0, t0 = active_opens(), cpu(served.proc.pid), sum(map(cpu, helpers)), time.monotonic()
    await asyncio.sleep(seconds)
    dt = time.monotonic() - t0
    return (
        (active_opens() - o0) / dt,
        (cpu(served.proc.pid) - c0) / dt * 100,
        (sum(map(cpu, helpers)) - h0) / dt * 100,
    )


async def on_the_lab(rate: float = 100.0) -> None:
    from ecmptui.lab import control

    control.down(LAB)
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        cfg = lab_config(tmp)
        try:
            control.up(LAB, port=0)
            json.loads(cli(cfg, "provision", "--nodes", "2", "--json"))
            served = Served(tmp, cfg, "--max-viewers", "25", "--rate", str(rate), *ONE_MACHINE)
            conns: list[Any] = []
            try:
                for n in (1, 20):
                    while len(conns) < n:
                        conn = await served.connect("viewer")
                        _chan, sess = await conn.create_session(
                            Collect, term_type="xterm-256color", term_size=(120, 40), encoding=None
                        )
                        await sess.wait_for(b"shared by every session", 30)
                        conns.append(conn)
                    await asyncio.sleep(3)
                    opens, server_cpu, prober_cpu = await measure(served)
                    apps = sum(map(cpu, served.sessions()))
                    await asyncio.sleep(5)
                    apps_cpu = (sum(map(cpu, served.sessions())) - apps) / 5 * 100
                    rows.append((n, opens, server_cpu, prober_cpu, apps_cpu))
            finally:
                for c in conns:
                    c.close()
                served.stop()
        finally:
            control.down(LAB)
    print(f"\nlive deployment (2 nodes), shared prober at {rate:.0f} req/s")
    print(
        f"{'viewers':>7} {'service: new conns/s':>21} {'serve CPU %':>12} "
        f"{'prober CPU %':>13} {'all apps CPU %':>15}"
    )
    for n, opens, server_cpu, prober_cpu, apps_cpu in rows:
        print(f"{n:>7} {opens:>21.1f} {server_cpu:>12.1f} {prober_cpu:>13.1f} {apps_cpu:>15.1f}")
    ratio = rows[1][1] / rows[0][1] if rows[0][1] else float("nan")
    print(
        f"service load, 20 viewers / 1 viewer: {ratio:.2f} (goal: 1.0); serve CPU with 20 "
        f"viewers {rows[1][2]:.1f}% (goal <= 10%)"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--lab", action="store_true", help="also measure on a live lab (root)")
    args = ap.parse_args()
    asyncio.run(main())
    if args.lab:
        asyncio.run(on_the_lab())
