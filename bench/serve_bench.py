"""The SSH-served dashboard: connect to first full frame, memory per session, server CPU
with 20 idle sessions.

Run: .venv/bin/python bench/serve_bench.py   (no lab needed: the sessions show the
"lab is not up" dialog of a lab that does not exist, so they idle like a quiet dashboard)
Goals (issue 6): first frame <= 1 s; <= 60 MB per session; server CPU (20 idle) <= 5%.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_seconds as cpu
from common import rss_mb

from test_serve import Collect, Served


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg = tmp / "down.toml"
        cfg.write_text('target = "lab"\nlab = "zz9"\n')
        served = Served(tmp, cfg, "--max-sessions", "25")
        conns, firsts = [], []
        try:
            for _ in range(20):
                t0 = time.perf_counter()
                conn = await served.connect("viewer")
                chan, sess = await conn.create_session(Collect, term_type="xterm-256color",
                                                       term_size=(80, 24), encoding=None)
                await sess.wait_for(b"Continue without", 10)  # the whole dialog is drawn
                firsts.append(time.perf_counter() - t0)
                conns.append(conn)
            await asyncio.sleep(3)
            children = served.children()
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
            ("server CPU with 20 idle sessions (% core)", server_cpu, 5)]:
        verdict = "" if goal is None else ("ok" if value <= goal else "OVER")
        print(f"{name:46} {value:8.2f} {goal if goal is not None else '-':>6}  {verdict}")


if __name__ == "__main__":
    asyncio.run(main())
