"""Health check: nginx stops while BIRD announces -- how long until failures stop, and how
many requests fail at 200 req/s: ecmptui's check (100 ms x fall 3) next to the same check at
anycast-healthchecker-style defaults (10 s x fall 2), and no check at all.

Run as root: .venv/bin/python bench/health_bench.py [--runs 3]   (own lab `ecmpb`)
Goal (issue 7): <= 1 s and <= 100 failed requests.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from common import LAB, lab_config

from ecmptui.lab import control

VARIANTS = [
    ("ecmptui default: 100 ms x fall 3", 100, 3, 8),
    ("anycast-healthchecker-style: 10 s x fall 2", 10000, 2, 30),
]


def cli(cfg: Path, *args: str) -> str:
    from common import cli as run

    return run(cfg, *args, check=False)  # a drill that did not recover is still a result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    runs = ap.parse_args().runs
    control.down(LAB)
    rows: list[tuple[str, list[dict[str, Any]]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            control.up(LAB, port=0)
            for name, interval, fall, limit in VARIANTS:
                cfg = lab_config(
                    Path(tmp),
                    f"[health]\ninterval_ms = {interval}\nfall = {fall}\ntimeout_ms = 200\n",
                )
                cli(cfg, "provision")
                with_check: list[dict[str, Any]] = []
                without: list[dict[str, Any]] = []
                for _ in range(runs):
                    out = json.loads(
                        cli(
                            cfg,
                            "drill",
                            "--scenario",
                            "stop-nginx",
                            "--rate",
                            "200",
                            "--limit",
                            str(limit),
                            "--json",
                        )
                    )
                    for r in out["scenarios"]:
                        if r["bfd"]:
                            continue
                        (with_check if r["health"] else without).append(r)
                rows.append((name, with_check))
                if interval == 100:
                    rows.append(("no health check", without))
        finally:
            control.down(LAB)
    print(f"{'variant':44} {'failures stop after (ms)':>25} {'failed requests':>16}")
    for name, results in rows:
        conv = [r["convergence_ms"] for r in results if r["convergence_ms"] is not None]
        stop = f"{statistics.median(conv):.0f}" if len(conv) == len(results) else "never*"
        failed = statistics.median(sum(r["failed"].values()) for r in results)
        print(f"{name:44} {stop:>25} {failed:16.0f}")
    print("* not before the operator restored nginx (the drill waits 8 s, then restores)")


if __name__ == "__main__":
    main()
