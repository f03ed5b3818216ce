"""Lab timings: `lab up` to API ready, device create -> active (sshd accepting), `lab down`.

Run as root: .venv/bin/python bench/lab_bench.py   (uses its own lab instance `ecmpb`)
Goals (issue 2): up <= 2 s; one device <= 1 s; 8 devices <= 4 s in all; down with 8 <= 2 s.
"""

from __future__ import annotations

import os
import time

import packet

from ecmptui.lab import control
from ecmptui.lab.instance import LabInstance


def wait_active(m, ids, timeout=30.0):
    deadline = time.monotonic() + timeout
    pending = set(ids)
    while pending and time.monotonic() < deadline:
        pending = {i for i in pending if m.get_device(i).state != "active"}
        time.sleep(0.02)
    if pending:
        raise SystemExit(f"devices not active after {timeout} s: {pending}")


def main() -> None:
    lab = LabInstance("ecmpb")
    control.down(lab)
    t0 = time.perf_counter()
    info, _ = control.up(lab, port=0)
    t_up = time.perf_counter() - t0
    try:
        os.environ["REQUESTS_CA_BUNDLE"] = info.ca_file
        m = packet.Manager(auth_token=info.token())
        m.end_point = info.endpoint
        t0 = time.perf_counter()
        d = m.create_device(info.project_id, "one", "t1.small", metro="lab",
                            operating_system="debian_12")
        wait_active(m, [d.id])
        t_one = time.perf_counter() - t0
        t0 = time.perf_counter()
        ids = [m.create_device(info.project_id, f"b{i}", "t1.small", metro="lab",
                               operating_system="debian_12").id for i in range(7)]
        wait_active(m, ids)
        t_eight = t_one + time.perf_counter() - t0
    finally:
        t0 = time.perf_counter()
        control.down(lab)
        t_down = time.perf_counter() - t0
    rows = [("lab up to API ready", t_up, 2.0), ("1 device create -> active", t_one, 1.0),
            ("8 devices create -> active", t_eight, 4.0), ("lab down with 8 devices", t_down, 2.0)]
    print(f"{'measure':32} {'seconds':>8} {'goal':>6}")
    for name, value, goal in rows:
        print(f"{name:32} {value:8.3f} {goal:6.1f}  {'ok' if value <= goal else 'OVER'}")


if __name__ == "__main__":
    main()
