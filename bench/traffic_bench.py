"""Prober throughput vs a shell curl loop, and drill figures (median of N runs).

Run as root: .venv/bin/python bench/traffic_bench.py [--runs 5] [--skip-drill]
    [--family ipv4|ipv6|both] [--daemon bird|frr]
Uses its own lab instance `ecmpb` with 2 provisioned nodes (dual stack).
Goals (issue 4): prober >= 1,500 req/s and >= 15x the curl loop; withdraw <= 10 ms with 0
failed; isolate with BFD <= 350 ms; without BFD <= 3.5 s (at 200 req/s). Issue 25: the
same for the IPv6 EIP (withdraw and router-kill 0 failed, isolate with BFD <= 350 ms).
Issue 26: the same on FRR nodes (`--daemon frr`), kill-bird (bgpd and bfdd killed) included.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import LAB, cli, lab_config

from ecmptui.lab import control


def curl_loop_rate(eip: str, n: int = 300) -> float:
    script = f"i=0; while [ $i -lt {n} ]; do curl -s -o /dev/null http://{eip}/; i=$((i+1)); done"
    t0 = time.perf_counter()
    subprocess.run(["ip", "netns", "exec", LAB.client_ns, "sh", "-c", script], check=True)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--skip-drill", action="store_true")
    ap.add_argument("--family", choices=("ipv4", "ipv6", "both"), default="ipv4")
    ap.add_argument("--daemon", choices=("bird", "frr"), default="bird")
    ap.add_argument(
        "--scenario", action="append", default=[], help="only these drill scenarios (default: all)"
    )
    args = ap.parse_args()
    control.down(LAB)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = lab_config(Path(tmp), f'[provision]\ndaemon = "{args.daemon}"\n')
        try:
            control.up(LAB, port=0)
            inv = json.loads(cli(cfg, "provision", "--nodes", "2", "--json"))
            prober = json.loads(cli(cfg, "probe", "--rate", "4000", "--duration", "5", "--json"))
            curl = curl_loop_rate(inv["eip"])
            print(
                f"{'prober, new connection per request':40} {prober['rate']:8.0f} req/s "
                f"(goal >= 1500; failed {prober['failed']})"
            )
            print(f"{'shell loop of curl (same namespace)':40} {curl:8.0f} req/s")
            print(f"{'ratio':40} {prober['rate'] / curl:8.1f} x     (goal >= 15)")
            if args.skip_drill:
                return
            runs: dict[tuple, list[dict]] = {}
            for i in range(args.runs):
                # exit 1 means a scenario did not recover: still a result, with its notes
                only = [a for name in args.scenario for a in ("--scenario", name)]
                out = cli(
                    cfg, "drill", "--rate", "200", "--family", args.family, "--json", *only,
                    check=False,
                )  # fmt: skip
                for r in json.loads(out)["scenarios"]:
                    runs.setdefault((r["name"], r["bfd"], r["health"], r["family"]), []).append(r)
                    for note in r["notes"]:
                        print(f"run {i + 1}: {r['name']} bfd={r['bfd']}: {note}", file=sys.stderr)
                print(f"drill run {i + 1}/{args.runs} done", file=sys.stderr)
        finally:
            control.down(LAB)
    goals = {("withdraw", False): 10, ("isolate", True): 350, ("isolate", False): 3500}
    print(
        f"\n{'scenario':14} {'IP':4} {'BFD':4} {'health':7} {'convergence ms (median)':>24} "
        f"{'failed (median)':>16} {'goal ms':>8}"
    )
    for (name, bfd, health, family), rows in runs.items():
        conv = [r["convergence_ms"] for r in rows if r["convergence_ms"] is not None]
        med = f"{statistics.median(conv):.0f}" if len(conv) == len(rows) else "not steady"
        failed = statistics.median(sum(r["failed"].values()) for r in rows)
        goal = goals.get((name, bfd))
        check = "-" if health is None else ("on" if health else "off")
        print(
            f"{name:14} {'v' + str(family):4} {'on' if bfd else 'off':4} {check:7} {med:>24} "
            f"{failed:16.0f} "
            f"{goal if goal is not None else '-':>8}"
        )


if __name__ == "__main__":
    main()
