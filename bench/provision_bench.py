"""Provisioning timings on a fresh lab (instance `ecmpb`), as the CLI runs them.

Run as root: .venv/bin/python bench/provision_bench.py [--daemons [--rounds N]]
Goals (issue 3): 2 nodes to "EIP answered by both" <= 5 s; 8 nodes <= 10 s;
no-change rerun <= 2 s; `status` for 8 nodes <= 1 s (each includes the CLI's start-up).
`--daemons` (issue 26): 2 BIRD nodes and 2 FRR nodes, each on a fresh lab, in turn for N
rounds; goal: FRR's median within 1.5x BIRD's.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ecmptui.lab import control
from ecmptui.lab.instance import LabInstance

LAB = LabInstance("ecmpb")


def cli(cfg: Path, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "ecmptui", "--config", str(cfg), *args],
        check=True,
        capture_output=True,
        text=True,
        cwd="/",
    ).stdout


def answered_by_all(eip: str, n: int, timeout: float = 10.0) -> None:
    want = {f"Welcome to nginx {i}" for i in range(1, n + 1)}
    code = (
        "import http.client,sys\nseen=set()\nfor _ in range(%d):\n"
        " c=http.client.HTTPConnection(sys.argv[1],80,timeout=1)\n"
        " try:\n  c.request('GET','/'); seen.add(c.getresponse().read().decode().strip())\n"
        " except OSError: pass\n c.close()\nprint('\\n'.join(seen))"
    ).replace("%d", str(20 * n))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["ip", "netns", "exec", LAB.client_ns, sys.executable, "-c", code, eip],
            capture_output=True,
            text=True,
        ).stdout
        if want <= set(out.splitlines()):
            return
    raise SystemExit(f"EIP not answered by all {n} nodes within {timeout} s")


def run(nodes: int, tmp: Path, daemon: str = "bird") -> dict:
    cfg = tmp / f"c{nodes}.toml"
    cfg.write_text(
        f'target = "lab"\nlab = "{LAB.name}"\n[provision]\ntag = "bench{nodes}"\n'
        f'hostname_prefix = "b{nodes}n"\ndaemon = "{daemon}"\n[ssh]\nkey = "{tmp}/id"\n'
        f'known_hosts = "{tmp}/kh"\n'
    )
    t0 = time.perf_counter()
    inv = json.loads(cli(cfg, "provision", "--nodes", str(nodes), "--json"))
    answered_by_all(inv["eip"], nodes)
    t_prov = time.perf_counter() - t0
    t0 = time.perf_counter()
    cli(cfg, "provision", "--nodes", str(nodes))
    t_rerun = time.perf_counter() - t0
    t0 = time.perf_counter()
    cli(cfg, "status", "--json")
    t_status = time.perf_counter() - t0
    cli(cfg, "deprovision")
    return {"provision": t_prov, "rerun": t_rerun, "status": t_status}


def compare_daemons(rounds: int) -> None:
    """2 BIRD nodes vs 2 FRR nodes, each on a fresh lab, in turn (the machine's drift hits
    both alike)."""
    times: dict[str, list[float]] = {"bird": [], "frr": []}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for _ in range(rounds):
                for daemon in ("bird", "frr"):
                    control.down(LAB)
                    control.up(LAB, port=0)
                    times[daemon].append(run(2, Path(tmp), daemon)["provision"])
        finally:
            control.down(LAB)
    med = {d: statistics.median(t) for d, t in times.items()}
    print(f"{'provision 2 nodes -> answered by both':40} {'median':>7} {'min':>7} {'max':>7}")
    for d, t in times.items():
        print(f"  {d:38} {med[d]:7.2f} {min(t):7.2f} {max(t):7.2f}")
    ratio = med["frr"] / med["bird"]
    print(
        f"FRR / BIRD (medians, {rounds} rounds): {ratio:.2f}  goal <= 1.5  "
        f"{'ok' if ratio <= 1.5 else 'OVER'}"
    )


def main() -> None:
    if "--daemons" in sys.argv:
        rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 3
        compare_daemons(rounds)
        return
    control.down(LAB)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            control.up(LAB, port=0)
            two = run(2, Path(tmp))
            control.down(LAB)
            control.up(LAB, port=0)
            eight = run(8, Path(tmp))
        finally:
            control.down(LAB)
    rows = [
        ("provision 2 nodes -> answered by both", two["provision"], 5.0),
        ("provision 8 nodes -> answered by all", eight["provision"], 10.0),
        ("no-change rerun (2 nodes)", two["rerun"], 2.0),
        ("no-change rerun (8 nodes)", eight["rerun"], 2.0),
        ("status, 8 nodes", eight["status"], 1.0),
    ]
    print(f"{'measure':40} {'seconds':>8} {'goal':>6}")
    for name, value, goal in rows:
        print(f"{name:40} {value:8.3f} {goal:6.1f}  {'ok' if value <= goal else 'OVER'}")


if __name__ == "__main__":
    main()
