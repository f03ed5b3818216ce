"""Lab machine timings: `lab up` with the cached image, device create -> active (sshd
accepting), 8 in parallel, 8 deleted, `lab down`, and the memory of one idle machine.

Run as root: .venv/bin/python bench/lab_bench.py [--rebuild-image]
  (uses its own lab instance `ecmpb`; --rebuild-image also times a fresh image build)
Goals (issue "lab machines"): image build <= 180 s; `lab up` <= 2 s with the image cached;
one device <= 2 s; 8 in parallel <= 5 s; 8 deleted <= 3 s; one idle machine <= 64 MB RSS.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import packet

from ecmptui.lab import control, image
from ecmptui.lab.instance import LabInstance
from ecmptui.lab.machine import Machine

LAB = LabInstance("ecmpb")


def wait_active(m: Any, ids: Any, timeout: Any = 30.0) -> None:
    deadline = time.monotonic() + timeout
    pending = set(ids)
    while pending and time.monotonic() < deadline:
        pending = {i for i in pending if m.get_device(i).state != "active"}
        time.sleep(0.02)
    if pending:
        raise SystemExit(f"devices not active after {timeout} s: {pending}")


def main() -> None:
    rows = []
    if "--rebuild-image" in sys.argv:
        t0 = time.perf_counter()
        image.ensure("server", rebuild=True)
        rows.append(("image build (server)", time.perf_counter() - t0, 180.0))
    control.down(LAB)
    t0 = time.perf_counter()
    info, _ = control.up(LAB, port=0)
    rows.append(("lab up, image cached", time.perf_counter() - t0, 2.0))
    try:
        os.environ["REQUESTS_CA_BUNDLE"] = info.ca_file
        m = packet.Manager(auth_token=info.token())
        m.end_point = info.endpoint

        def create(name: str) -> str:
            return m.create_device(
                info.project_id, name, "t1.small", metro="lab", operating_system="debian_12"
            ).id

        t0 = time.perf_counter()
        first = create("one")
        wait_active(m, [first])
        rows.append(("1 device create -> active", time.perf_counter() - t0, 2.0))
        time.sleep(2.0)  # let it settle, then weigh it
        machine = Machine(
            LAB.server_machine(1), LAB.server_ns(1), LAB.server_dir(1), image.image("server").rootfs
        )
        rows.append(("idle machine RSS (MB)", machine.rss_bytes() / 2**20, 64.0))
        m.call_api(f"devices/{first}", type="DELETE")
        t0 = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(create, [f"p{i}" for i in range(8)]))
        wait_active(m, ids)
        rows.append(("8 devices in parallel -> active", time.perf_counter() - t0, 5.0))
        t0 = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: m.call_api(f"devices/{i}", type="DELETE"), ids))
        rows.append(("8 devices deleted", time.perf_counter() - t0, 3.0))
    finally:
        t0 = time.perf_counter()
        control.down(LAB)
        rows.append(("lab down", time.perf_counter() - t0, 2.0))
    print(f"{'measure':34} {'value':>8} {'goal':>6}")
    for name, value, goal in rows:
        print(f"{name:34} {value:8.3f} {goal:6.1f}  {'ok' if value <= goal else 'OVER'}")


if __name__ == "__main__":
    main()
