"""Truth and recovery (issue 22), measured on real labs; prints numbers, asserts nothing.

  --reprovision N   a resilient 3-node lab: deprovision + provision N times, each followed
                    by a 1 s probe (failed requests per round), then the ECMP agent's `ip`
                    helper killed: seconds until the agent's log says it recovered
  --pairs N         N pairs of different labs started at the same moment: how many came up,
                    and on distinct subnets
  --nodes N         provision N nodes while another lab carries traffic (a prober at
                    --load-rate req/s) and --burn K busy processes stand for other labs'
                    work: seconds, the load before and the highest seen

Uses the labs `ecmpb` (and `ecmpc` for the load, `ecmpi`/`ecmpj` for the pairs), removed after.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import LAB, cli, lab_config

from ecmptui.lab import control
from ecmptui.lab.instance import LabInstance
from ecmptui.lab.router import AGENT_UNIT, fabric_bird

KILL_HELPER = (
    "import os\nfor p in filter(str.isdigit, os.listdir('/proc')):\n"
    "    try:\n        cmd = open(f'/proc/{p}/cmdline', 'rb').read()\n"
    "    except OSError:\n        continue\n"
    "    if cmd.startswith(b'ip\\0-force\\0-batch'):\n        os.kill(int(p), 9)\n"
)


def ecmptui(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ecmptui", *args],
        capture_output=True,
        text=True,
        cwd="/",
        timeout=900,
    )


def reprovision(rounds: int, tmp: Path) -> None:
    cfg = lab_config(tmp, "[provision]\nnodes = 3\n")
    control.down(LAB)
    ecmptui("--lab", LAB.name, "lab", "up", "--port", "0", "--ecmp", "resilient")
    try:
        for i in range(1, rounds + 1):
            cli(cfg, "deprovision")
            t0 = time.monotonic()
            cli(cfg, "provision")
            took = time.monotonic() - t0
            probe = json.loads(cli(cfg, "probe", "--json", "--rate", "200", "--duration", "1"))
            print(
                f"round {i}: provision {took:.1f} s, probe {probe['requests']} requests, "
                f"failed {probe['failed']}, answered by {len(probe['by_backend'])} nodes"
            )
        m = fabric_bird(LAB).machine
        t0 = time.time()
        m.run("python3", "-c", KILL_HELPER)
        said = None
        deadline = time.monotonic() + 30
        while said is None and time.monotonic() < deadline:
            log = m.run("journalctl", "-u", AGENT_UNIT, "-o", "cat", "--no-pager").stdout
            said = next(
                (
                    float(ln.split()[0])
                    for ln in log.splitlines()
                    if ln[:1].isdigit() and float(ln.split()[0]) > t0 and "recovered" in ln
                ),
                None,
            )
            time.sleep(0.1)
        print(
            "agent helper killed: "
            + (f"recovered after {said - t0:.2f} s" if said else "no recovery logged within 30 s")
        )
    finally:
        control.down(LAB)


def pairs(count: int) -> None:
    labs = [LabInstance("ecmpi"), LabInstance("ecmpj")]
    for i in range(1, count + 1):
        for lab in labs:
            control.down(lab)
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "ecmptui", "--lab", lab.name, "lab", "up", "--port", "0"],
                cwd="/",
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for lab in labs
        ]
        codes = [p.wait(timeout=300) for p in procs]
        infos = [control.read_info(lab) for lab in labs]
        subnets = {info.mgmt_subnet for info in infos if info is not None}
        print(f"pair {i}: exit codes {codes}, {len(subnets)} distinct mgmt subnets")
        for lab in labs:
            control.down(lab)


BURN = "import time\nt = time.time()\nwhile time.time() - t < 900: pass\n"


def many(nodes: int, load_rate: float, burn: int, tmp: Path) -> None:
    load_lab = LabInstance("ecmpc")
    load_cfg = tmp / "load.toml"
    load_cfg.write_text(
        f'target = "lab"\nlab = "{load_lab.name}"\n[provision]\nnodes = 4\n'
        f'[ssh]\nkey = "{tmp}/lid"\nknown_hosts = "{tmp}/lkh"\n'
    )
    cfg = lab_config(tmp)
    for lab in (LAB, load_lab):
        control.down(lab)
    try:
        control.up(load_lab, port=0)
        control.up(LAB, port=0)
        cli(load_cfg, "provision")
        load = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ecmptui",
                "--config",
                str(load_cfg),
                "probe",
                "--json",
                "--rate",
                str(load_rate),
                "--duration",
                "600",
            ],
            cwd="/",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(burn)]
        time.sleep(60)  # let the load average see it
        before = os.getloadavg()[0]
        peak = [before]
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(1.0):
                peak.append(os.getloadavg()[0])

        threading.Thread(target=watch, daemon=True).start()
        t0 = time.monotonic()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "ecmptui",
                "--config",
                str(cfg),
                "provision",
                "--nodes",
                str(nodes),
            ],
            capture_output=True,
            text=True,
            cwd="/",
            timeout=1800,
        )
        took = time.monotonic() - t0
        stop.set()
        for p in [load, *burners]:
            p.kill()
        outcome = "ok" if proc.returncode == 0 else proc.stderr.strip()
        print(
            f"provision --nodes {nodes}: {outcome}, {took:.1f} s, load {before:.1f} before, "
            f"{max(peak):.1f} at most"
        )
    finally:
        for lab in (LAB, load_lab):
            control.down(lab)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reprovision", type=int, default=0, metavar="N")
    parser.add_argument("--pairs", type=int, default=0, metavar="N")
    parser.add_argument("--nodes", type=int, default=0, metavar="N")
    parser.add_argument("--load-rate", type=float, default=1500.0, metavar="R")
    parser.add_argument("--burn", type=int, default=3, metavar="K")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.reprovision:
            reprovision(args.reprovision, Path(tmp))
        if args.pairs:
            pairs(args.pairs)
        if args.nodes:
            many(args.nodes, args.load_rate, args.burn, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
