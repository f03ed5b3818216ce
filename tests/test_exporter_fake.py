"""The headless exporter on the in-process fake target: its prober's answers, the status and
a node's own health-check withdraw all reach the metrics; a prober that dies is said and
started again (the lab's real path is tests/test_prometheus.py)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ecmptui.metrics.exporter import Exporter
from ecmptui.metrics.probe_metrics import ProbeMetrics
from ecmptui.waits import scaled
from fake_target import FakeLab


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeLab]:
    with FakeLab(tmp_path) as lab:
        yield lab


def samples(m: ProbeMetrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    text = generate_latest(m.registry).decode()
    return {
        tuple(sorted(s.labels.items())): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == name
    }


async def until(pred: Callable[[], object], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def answered(m: ProbeMetrics, backend: str) -> float:
    key = (("backend", backend), ("outcome", "answered"), ("vantage", "t"))
    return samples(m, "ecmptui_probe_requests_total").get(key, 0.0)


async def test_the_exporter_feeds_requests_status_and_health_actions(fake: FakeLab) -> None:
    m = ProbeMetrics("t", target="lab")
    exporter = Exporter(fake.cockpit(read_only=True), m, rate=100)
    stop = asyncio.Event()
    task = asyncio.create_task(exporter.run(stop))
    try:
        await until(
            lambda: answered(m, "ecmp-node1") > 5 and answered(m, "ecmp-node2") > 5, "answers"
        )
        assert samples(m, "ecmptui_prober_running") == {(("vantage", "t"),): 1.0}
        await until(lambda: len(samples(m, "ecmptui_bgp_session_up")) >= 4, "every session")
        up = samples(m, "ecmptui_bgp_session_up")
        assert all(v == 1.0 for v in up.values()), up
        # node2's health check withdraws it: an action of source "health", measured
        server = fake.server("ecmp-node2")
        state = {"state": "up", "since": time.time(), "interval_ms": 100, "fall": 3}
        server.files["/var/lib/ecmptui/health.json"] = json.dumps(state)
        await until(
            lambda: (
                (exporter.status is not None)
                and (n := exporter.status.node("ecmp-node2")) is not None
                and n.health is not None
            ),
            "the health check seen",
        )
        server.files["/var/lib/ecmptui/health.json"] = json.dumps(
            {**state, "state": "down", "since": time.time()}
        )
        server.withdrawn = True
        key = (
            ("action", "withdraw"),
            ("node", "ecmp-node2"),
            ("result", "done"),
            ("source", "health"),
            ("vantage", "t"),
        )
        await until(
            lambda: samples(m, "ecmptui_actions_total").get(key) == 1.0, "the health withdraw"
        )
        # measured: its failed requests counted (its convergence too, unless a loaded
        # machine kept the traffic from settling within the limit)
        failed = samples(m, "ecmptui_action_failed_requests_total")
        assert (("action", "withdraw"), ("node", "ecmp-node2"), ("vantage", "t")) in failed
        # not an operator's withdraw: the node is down by its own check, and not announced
        node2 = (("node", "ecmp-node2"), ("vantage", "t"))
        assert samples(m, "ecmptui_node_withdrawn")[node2] == 0.0
        await until(lambda: samples(m, "ecmptui_node_health_up").get(node2) == 0.0, "health down")
        announced = samples(m, "ecmptui_node_announced")
        assert announced[(("family", "4"), *node2)] == 0.0
        # the prober dies: said in the gauge, then started again
        assert exporter.stream is not None
        await exporter.stream.stop()
        await until(
            lambda: (
                exporter.stream is not None
                and exporter.stream.running
                and samples(m, "ecmptui_prober_running")[(("vantage", "t"),)] == 1.0
            ),
            "the prober started again",
        )
        before = answered(m, "ecmp-node1")
        await until(lambda: answered(m, "ecmp-node1") > before + 5, "answers again")
    finally:
        stop.set()
        await asyncio.wait_for(task, scaled(15))
    assert samples(m, "ecmptui_prober_running")[(("vantage", "t"),)] == 0.0
