"""What the exporter costs beside its prober, and how fast a scrape answers, at 16 nodes.

Run as root: .venv/bin/python bench/exporter_bench.py [--nodes 16] [--seconds 60]
(its own lab `ecmpb`, removed at the end)
Goals (issue 27): at the default probe rate (100/s) the exporter costs <= 5 % of one core
beyond the prober itself; a scrape answers in <= 50 ms with 16 nodes.

One exporter runs; over the same window the script reads the CPU time of the exporter's
own process (status poller, metrics, HTTP: what it adds) and of its prober child (the same
prober `ecmptui probe` runs), then times scrapes of /metrics from this host.
"""

from __future__ import annotations

import argparse
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from common import LAB, TICK, cli, cpu_seconds, lab_config, rss_mb

from ecmptui.lab import control
from ecmptui.metrics.probe_metrics import ProbeMetrics
from ecmptui.traffic.samples import Sample


def cpu_with_reaped(pid: int) -> float:
    """CPU seconds of `pid` and of the children it has waited for (the `ip`, `nsenter` and
    `ssh` helpers a status poll runs come and go: they count for the exporter)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / TICK


def is_prober(pid: int) -> bool:
    return b"probe" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def tree(pid: int) -> list[int]:
    """`pid` and every descendant (the prober is `ip netns exec` turned into python)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children(p)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--scrapes", type=int, default=300)
    ap.add_argument("--poll", default="10", help="the exporter's --poll (its default: 10)")
    args = ap.parse_args()
    feeding()
    control.down(LAB)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = lab_config(Path(tmp), extra=f"[provision]\nnodes = {args.nodes}\n")
        try:
            control.up(LAB, port=0)
            t0 = time.monotonic()
            cli(cfg, "provision", "--family", "ipv4")
            print(f"provisioned {args.nodes} nodes in {time.monotonic() - t0:.0f} s")
            log = Path(tmp) / "exporter.log"
            with open(log, "wb") as fh:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "ecmptui", "--config", str(cfg), "exporter"]
                    + ["--listen", "127.0.0.1:0", "--poll", args.poll],
                    stdout=fh,
                    stderr=fh,
                    cwd="/",
                    start_new_session=True,
                )
            try:
                measure(proc, log, args)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
        finally:
            control.down(LAB)


def feeding(n: int = 100_000) -> None:
    """What feeding the metrics costs per probe sample, in this process alone."""
    m = ProbeMetrics("bench")
    samples = [Sample(i / 100, f"ecmp-node{i % 16 + 1}", None, 2.0) for i in range(n)]
    t = time.process_time()
    for s in samples:
        m.observe(s)
    per = (time.process_time() - t) / n
    print(
        f"feeding one sample to the metrics: {per * 1e6:.1f} us "
        f"({100 * per * 100:.3f} % of one core at 100 req/s)"
    )


def measure(proc: subprocess.Popen[bytes], log: Path, args: argparse.Namespace) -> None:
    url = None
    for _ in range(600):
        m = re.search(r"metrics at (http://\S+/metrics)", log.read_text())
        if m:
            url = m.group(1)
            break
        time.sleep(0.1)
    assert url, log.read_text()
    # warm: the prober runs and every node has answered
    for _ in range(600):
        text = httpx.get(url, timeout=10).text
        if "ecmptui_prober_running" in text and text.count("ecmptui_node_answering{") >= args.nodes:
            break
        time.sleep(0.2)
    time.sleep(5)
    helpers = [p for p in tree(proc.pid) if p != proc.pid]
    prober = [p for p in helpers if is_prober(p)]
    others = [p for p in helpers if p not in prober]  # e.g. the lab's FIB watch

    def own() -> float:
        return cpu_with_reaped(proc.pid) + sum(cpu_seconds(p) for p in others)

    main0, prober0 = own(), sum(cpu_seconds(p) for p in prober)
    w0 = time.monotonic()
    time.sleep(args.seconds)
    wall = time.monotonic() - w0
    main1, prober1 = own(), sum(cpu_seconds(p) for p in prober)
    text = httpx.get(url, timeout=10).text
    answered = sum(
        float(v)
        for v in re.findall(
            r'ecmptui_probe_requests_total\{[^}]*outcome="answered"[^}]*\} (\S+)', text
        )
    )
    print(
        f"window {wall:.0f} s, {args.nodes} nodes' status polled every {args.poll} s, "
        "prober at 100 req/s"
    )
    print(
        f"exporter's own process and its other helpers: "
        f"{100 * (main1 - main0) / wall:.1f} % of one core"
    )
    print(f"its prober (child):     {100 * (prober1 - prober0) / wall:.1f} % of one core")
    print(f"exporter RSS {rss_mb(proc.pid):.0f} MB; answered so far {answered:.0f}")
    times = []
    size = 0
    with httpx.Client() as client:
        for _ in range(args.scrapes):
            t = time.perf_counter()
            r = client.get(url, timeout=10)
            times.append((time.perf_counter() - t) * 1000)
            size = len(r.content)
            time.sleep(0.01)
    times.sort()
    print(
        f"scrape of {size} bytes ({text.count(chr(10))} lines), {args.scrapes} times: "
        f"min {times[0]:.1f} ms, median {statistics.median(times):.1f} ms, "
        f"p99 {times[int(len(times) * 0.99) - 1]:.1f} ms, max {times[-1]:.1f} ms"
    )


if __name__ == "__main__":
    main()
