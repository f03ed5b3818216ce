"""What removing or adding a server does to connections already open, on the lab's
hash-threshold ECMP router, at N = 2, 4 and 8 servers (a drill's remove-node and add-node
scenarios with long-lived flows).

Run as root: .venv/bin/python bench/flows_bench.py [--flows 400]   (own lab `ecmpb`)
Theory (hash-threshold, equal weights): removing the last next hop of N moves
(N-2)/(2(N-1)) of the survivors' flows (0 at N=2, 0.33 at N=4, 0.43 at N=8); adding one
moves about half of all flows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import LAB, lab_config

from ecmptui.lab import control


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", type=int, default=400)
    args = ap.parse_args()
    rows = []
    for n in (2, 4, 8):
        control.down(LAB)
        with tempfile.TemporaryDirectory() as tmp:
            cfg = lab_config(Path(tmp), extra=f"[provision]\nnodes = {n}\n")
            try:
                control.up(LAB, port=0)
                base = [sys.executable, "-m", "ecmptui", "--config", str(cfg)]
                subprocess.run([*base, "provision"], check=True, capture_output=True, cwd="/")
                out = subprocess.run([*base, "drill", "--scenario", "remove-node",
                                      "--scenario", "add-node", "--flows", str(args.flows),
                                      "--json"], capture_output=True, text=True, cwd="/")
                for r in json.loads(out.stdout)["scenarios"]:
                    rows.append((n, r["name"], r["flows"], r["failed"]))
            finally:
                control.down(LAB)
    print(f"{'N':>2} {'scenario':12} {'flows':>6} {'on node':>8} {'broken on node':>15} "
          f"{'bystanders broken':>18} {'share':>6} {'theory':>7} {'new conns failed':>17}")
    for n, name, f, failed in rows:
        others = f["flows"] - f["on_node"]
        share = f["bystanders"] / (others if name == "remove-node" else f["flows"]) \
            if (others if name == "remove-node" else f["flows"]) else 0.0
        theory = (n - 2) / (2 * (n - 1)) if name == "remove-node" else 0.5
        print(f"{n:>2} {name:12} {f['flows']:>6} {f['on_node']:>8} {f['affected']:>15} "
              f"{f['bystanders']:>18} {share:>6.2f} {theory:>7.2f} "
              f"{sum(failed.values()):>17}")
    print("share: bystanders broken / flows on the other nodes (remove-node) or / all flows "
          "(add-node)")


if __name__ == "__main__":
    main()
