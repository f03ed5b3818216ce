"""What removing, adding or losing a server does to connections already open, with the
lab's two ECMP modes, at N = 2, 4 and 8 servers: a drill's remove-node, add-node and
kill-bird scenarios with long-lived flows. In resilient mode also how fast the agent turns
BIRD's route change into the next-hop group.

Run as root: .venv/bin/python bench/flows_bench.py [--flows 400] [--mode hash|resilient]
[--scenarios kill-bird,remove-node,add-node] (own lab `ecmpb`). In resilient mode the order
matters: a node that came back holds no bucket until some go idle, so the scenario after the
first one finds it empty.
Theory (hash-threshold, equal weights): removing the last next hop of N moves
(N-2)/(2(N-1)) of the survivors' flows (0 at N=2, 0.33 at N=4, 0.43 at N=8); adding one
moves about half of all flows. Resilient groups: 0 bystanders either way.
Goal (issue 18): the agent applies a change within 10 ms of BIRD's.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from common import LAB, lab_config

from ecmptui.lab import control

SCENARIOS = ("kill-bird", "remove-node", "add-node")  # add-node last: see the docs


def cli(cfg: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ecmptui", "--config", str(cfg), *args],
        capture_output=True,
        text=True,
        cwd="/",
    )


def agent_latency(cfg: Path, node: str, rounds: int = 10) -> list[float]:
    """ms from BIRD's change of table 100 to the agent's change of the group."""
    mon = subprocess.Popen(
        ["ip", "-ts", "-n", LAB.fabric_ns, "monitor", "route", "nexthop"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(rounds):
            for action in ("withdraw", "announce"):
                cli(cfg, "node", action, node)
                time.sleep(1.5)
    finally:
        mon.terminate()
    out = mon.communicate(timeout=5)[0]
    stamps = []
    bird_at: dict[int, float] = {}  # per family: BIRD's change not yet followed by the agent's
    groups = {4: r"id 5\d\d\d group", 6: r"id [6-9]\d\d\d group"}  # the agent's group ids
    for line in out.splitlines():
        m = re.match(r"\[(\S+)\]\s+(?:Deleted\s+)?(\S+)", line)
        if not m:
            continue
        t = datetime.fromisoformat(m.group(1)).timestamp()
        if "table 100" in line:
            bird_at.setdefault(6 if ":" in m.group(2) else 4, t)
            continue
        for family, pattern in groups.items():
            if family in bird_at and re.search(pattern, line):
                stamps.append((t - bird_at.pop(family)) * 1000)
    return stamps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", type=int, default=400)
    ap.add_argument("--mode", choices=("hash", "resilient", "both"), default="both")
    ap.add_argument("--family", choices=("ipv4", "ipv6", "both"), default="ipv4")
    ap.add_argument("--sizes", default="2,4,8", help="comma-separated N (servers)")
    ap.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help="comma-separated, in the order they run"
    )
    args = ap.parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    modes = ("hash", "resilient") if args.mode == "both" else (args.mode,)
    rows, latency = [], []
    for mode in modes:
        for n in [int(x) for x in args.sizes.split(",")]:
            control.down(LAB)
            with tempfile.TemporaryDirectory() as tmp:
                cfg = lab_config(Path(tmp), extra=f"[provision]\nnodes = {n}\n")
                try:
                    control.up(LAB, port=0, ecmp=mode)
                    cli(cfg, "provision").check_returncode()
                    scen = [a for s in scenarios for a in ("--scenario", s)]
                    out = cli(
                        cfg, "drill", *scen, "--flows", str(args.flows), "--family", args.family,
                        "--json",
                    )  # fmt: skip
                    for r in json.loads(out.stdout)["scenarios"]:
                        if r["name"] == "kill-bird" and r["bfd"] is False:
                            continue  # BFD on: the crash as fast as the lab detects it
                        rows.append((mode, n, r["name"], r["flows"], r["failed"], r["family"]))
                    if mode == "resilient" and n == 4:
                        latency = agent_latency(cfg, f"ecmp-node{n}")
                finally:
                    control.down(LAB)
    print(
        f"{'mode':9} {'IP':3} {'N':>2} {'scenario':12} {'flows':>6} {'on node':>8} "
        f"{'broken on node':>15} {'bystanders':>11} {'share':>6} {'theory':>7} "
        f"{'new conns failed':>17}"
    )
    for mode, n, name, f, failed, family in rows:
        others = f["flows"] - f["on_node"]
        base = f["flows"] if name == "add-node" else others
        share = f["bystanders"] / base if base else 0.0
        theory = (
            0.0 if mode == "resilient" else (0.5 if name == "add-node" else (n - 2) / (2 * (n - 1)))
        )
        print(
            f"{mode:9} v{family:<2} {n:>2} {name:12} {f['flows']:>6} {f['on_node']:>8} "
            f"{f['affected']:>15} {f['bystanders']:>11} {share:>6.2f} {theory:>7.2f} "
            f"{sum(failed.values()):>17}"
        )
    print("share: bystanders broken / flows on the other nodes (add-node: / all flows)")
    if latency:
        print(
            f"\nagent: BIRD's route change to the resilient group's change, {len(latency)} "
            f"changes: median {statistics.median(latency):.1f} ms, max "
            f"{max(latency):.1f} ms (goal <= 10 ms)"
        )


if __name__ == "__main__":
    main()
