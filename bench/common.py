"""What the bench scripts share: the bench lab instance, the CLI, /proc readings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ecmptui.lab.instance import LabInstance

# never the user's lab nor the test suite's; ECMPTUI_BENCH_LAB runs two benches side by side
LAB = LabInstance(os.environ.get("ECMPTUI_BENCH_LAB", "ecmpb"))
TICK = os.sysconf("SC_CLK_TCK")


def lab_config(directory: Path, extra: str = "") -> Path:
    """A settings file for the bench lab with its own SSH key."""
    cfg = directory / "bench.toml"
    cfg.write_text(
        f'target = "lab"\nlab = "{LAB.name}"\n[ssh]\nkey = "{directory}/id"\n'
        f'known_hosts = "{directory}/kh"\n{extra}'
    )
    return cfg


def cli(cfg: Path, *args: str, check: bool = True) -> str:
    """Run `ecmptui --config cfg ARGS` (the installed package, from /); its stdout."""
    return subprocess.run(
        [sys.executable, "-m", "ecmptui", "--config", str(cfg), *args],
        check=check,
        capture_output=True,
        text=True,
        cwd="/",
    ).stdout


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
