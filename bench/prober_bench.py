"""The prober near the machine's limit, and long-lived flows beside it.

Run as root: .venv/bin/python bench/prober_bench.py   (own lab `ecmpb`, 4 nodes; needs `ab`
from apache2-utils for the comparison)
Goals (issue 18): >= 10,000 new connections/s; `--duration` kept within 2 %; schedule lag
reported; 1,000 long-lived flows alongside 200 req/s of new connections.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from common import LAB, cli, lab_config

from ecmptui.lab import control


def ab_rate(eip: str, concurrency: int, n: int = 20000) -> float:
    out = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            LAB.client_ns,
            "ab",
            "-q",
            "-n",
            str(n),
            "-c",
            str(concurrency),
            f"http://{eip}/",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    m = re.search(r"Requests per second:\s+([\d.]+)", out)
    assert m is not None, out
    return float(m.group(1))


def probe(cfg: Path, *args: str) -> tuple[dict, float]:
    t0 = time.monotonic()
    out = json.loads(cli(cfg, "probe", "--json", *args))
    return out, time.monotonic() - t0


def main() -> None:
    if not shutil.which("ab"):
        raise SystemExit("ab is needed for the comparison (apt-get install apache2-utils)")
    control.down(LAB)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = lab_config(Path(tmp), extra="[provision]\nnodes = 4\n")
        try:
            control.up(LAB, port=0)
            inv = json.loads(cli(cfg, "provision", "--json"))
            ab1, ab8 = ab_rate(inv["eip"], 1), ab_rate(inv["eip"], 8)
            for rate in (2000, 5000, 8000, 10000, 15000):
                out, took = probe(cfg, "--rate", str(rate), "--duration", "5")
                s = out["schedule"]
                rows.append(
                    (
                        rate,
                        s["achieved_rate"],
                        s["sent"],
                        s["due"],
                        s["lag_ms"]["p50"],
                        s["lag_ms"]["p99"],
                        out["failed"],
                        took,
                    )
                )
            flows, _ = probe(
                cfg, "--rate", "200", "--duration", "20", "--flows", "1000", "--flow-interval", "1"
            )
        finally:
            control.down(LAB)
    print(f"ab (apachebench), new connection per request: -c 1 {ab1:,.0f}/s, -c 8 {ab8:,.0f}/s")
    print(
        f"\n{'asked/s':>8} {'achieved/s':>11} {'sent':>7} {'due':>7} {'lag p50 ms':>11} "
        f"{'lag p99 ms':>11} {'failed':>7} {'run s':>6} {'vs ab -c 8':>11}"
    )
    for rate, got, sent, due, p50, p99, failed, took in rows:
        print(
            f"{rate:>8} {got:>11,.0f} {sent:>7} {due:>7} {p50 or 0:>11.2f} {p99 or 0:>11.2f} "
            f"{failed:>7} {took:>6.1f} {got / ab8:>11.2f}"
        )
    best = max(r[1] for r in rows)
    print(
        f"best {best:,.0f} new connections/s (goal >= 10,000); ratio to ab -c 8: {best / ab8:.2f}"
    )
    f = flows["flows"]
    print(
        f"\n1,000 flows beside 200 req/s for 20 s: opened {f['opened']}, broken {f['broken']}"
        f", moved {f['moved']}; new connections {flows['requests']} at {flows['rate']}/s, "
        f"failed {flows['failed']}, slipped {flows['schedule']['slipped']}"
    )


if __name__ == "__main__":
    main()
