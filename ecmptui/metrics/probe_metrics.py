"""The metrics ecmptui exports, fed as it measures: every probe sample, every flow event,
every settled action, and the latest status snapshot (read at scrape time).

Names follow Prometheus's conventions (base units, `_total` counters) and every label's
values are bounded: backends and nodes are capped at `MAX_LABEL_VALUES` each (beyond, they
count as "other"), actions come from ecmptui's registry, routers are the nodes' BGP peers.
Every series carries `vantage`: where the prober stands. No label holds a secret: node and
backend names, peer addresses, action names and outcomes only. The full list is in
docs/prometheus/README.md.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ecmptui import __version__

if TYPE_CHECKING:
    from ecmptui.deployment.status import DeploymentStatus
    from ecmptui.traffic.flows import FlowEvent
    from ecmptui.traffic.model import ActionRecord
    from ecmptui.traffic.samples import Sample

MAX_LABEL_VALUES = 64  # distinct backends (and nodes) per metric; the rest are "other"
OUTCOMES = ("answered", "refused", "timeout", "reset", "unreachable", "http_error", "other")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CONVERGENCE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)


def outcome_of(error: str | None) -> str:
    """A probe sample's outcome label: answered, or how it failed."""
    if error is None:
        return "answered"
    if error.startswith("http_"):
        return "http_error"
    return error if error in OUTCOMES else "other"


class _Capped:
    """A label's values as they come, at most `limit` distinct ones; later ones are
    "other" (a misbehaving server must not grow the exposition without bound)."""

    def __init__(self, limit: int = MAX_LABEL_VALUES) -> None:
        self.limit, self.seen = limit, set[str]()

    def __call__(self, value: str) -> str:
        if value in self.seen:
            return value
        if len(self.seen) >= self.limit:
            return "other"
        self.seen.add(value)
        return value


class ProbeMetrics:
    """One registry of ecmptui's metrics for one vantage point."""

    def __init__(self, vantage: str, target: str = "") -> None:
        self.vantage = vantage
        disable_created_metrics()  # `_created` series: twice the exposition, nothing we use
        self.registry = CollectorRegistry()
        r, v = self.registry, ("vantage",)
        self.requests = Counter(
            "ecmptui_probe_requests",
            "Probe requests by the backend that answered (empty when none did) and outcome",
            [*v, "backend", "outcome"],
            registry=r,
        )
        self.latency = Histogram(
            "ecmptui_probe_latency_seconds",
            "Time from connect to the end of the answer, answered requests only",
            [*v, "backend"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.flows_broken = Counter(
            "ecmptui_flows_broken",
            "Long-lived flows that broke, by the backend they were on",
            [*v, "backend"],
            registry=r,
        )
        self.flows_moved = Counter(
            "ecmptui_flows_moved",
            "Broken long-lived flows that came back on another backend",
            [*v, "backend"],
            registry=r,
        )
        self.flows_open = Gauge(
            "ecmptui_flows_open",
            "Long-lived flows open now, by the backend holding them",
            [*v, "backend"],
            registry=r,
        )
        labels = [*v, "action", "node"]
        self.actions = Counter(
            "ecmptui_actions",
            "Actions taken on nodes while probing (by an operator or a node's health check)",
            [*labels, "source", "result"],
            registry=r,
        )
        self.action_failed = Counter(
            "ecmptui_action_failed_requests",
            "Probe requests that failed around an action, counted when it settled",
            labels,
            registry=r,
        )
        self.convergence = Histogram(
            "ecmptui_action_convergence_seconds",
            "From an action taking a node out to steady answers from the others",
            labels,
            buckets=CONVERGENCE_BUCKETS,
            registry=r,
        )
        self.recovery = Histogram(
            "ecmptui_action_recovery_seconds",
            "From an action putting a node back to its first answer",
            labels,
            buckets=CONVERGENCE_BUCKETS,
            registry=r,
        )
        self.fib = Histogram(
            "ecmptui_action_fib_seconds",
            "Lab: from an action to the fabric's FIB change for the EIP",
            labels,
            buckets=CONVERGENCE_BUCKETS,
            registry=r,
        )
        self.prober_running = Gauge(
            "ecmptui_prober_running",
            "1 while the prober runs (0: stopped, failed to start, or nothing to probe)",
            v,
            registry=r,
        )
        info = Gauge(
            "ecmptui_info",
            "Always 1: the ecmptui version and the target this vantage watches",
            [*v, "version", "target"],
            registry=r,
        )
        info.labels(vantage, __version__, target).set(1)
        self.status = StatusCollector(vantage)
        r.register(self.status)
        self._backend, self._node = _Capped(), _Capped()
        self._flow_on: dict[int, str] = {}  # open flows: flow -> backend label
        self._lock = threading.Lock()  # flows: fed by the prober's thread, read by scrapes

    # -- fed as things are measured --------------------------------------------------------
    def observe(self, s: Sample) -> None:
        """One probe request."""
        backend = self._backend(s.backend) if s.backend and s.error is None else ""
        self.requests.labels(self.vantage, backend, outcome_of(s.error)).inc()
        if s.error is None:
            self.latency.labels(self.vantage, backend).observe(s.latency_ms / 1000)

    def flow(self, ev: FlowEvent) -> None:
        """One long-lived flow event: open, break or moved."""
        backend = self._backend(ev.backend or "unknown")
        with self._lock:
            was = self._flow_on.pop(ev.flow, None)
            if was is not None:
                self.flows_open.labels(self.vantage, was).dec()
            if ev.event == "break":
                self.flows_broken.labels(self.vantage, backend).inc()
                return
            if ev.event == "moved":
                self.flows_moved.labels(self.vantage, backend).inc()
            self._flow_on[ev.flow] = backend
            self.flows_open.labels(self.vantage, backend).inc()

    def action(self, rec: ActionRecord) -> None:
        """An action, once its outcome is measured (or it failed)."""
        node = self._node(rec.node)
        labels = (self.vantage, rec.action, node)
        result = "failed" if rec.outcome.startswith("failed") else "done"
        self.actions.labels(*labels, rec.source, result).inc()
        if result == "failed":
            return
        self.action_failed.labels(*labels).inc(sum(rec.failed.values()))
        if rec.convergence_ms is not None:
            self.convergence.labels(*labels).observe(rec.convergence_ms / 1000)
        if rec.recovery_ms is not None:
            self.recovery.labels(*labels).observe(rec.recovery_ms / 1000)
        if rec.fib_ms is not None:
            self.fib.labels(*labels).observe(rec.fib_ms / 1000)

    def set_prober(self, running: bool) -> None:
        """Whether the prober runs now (it started, or it stopped or failed)."""
        self.prober_running.labels(self.vantage).set(float(running))

    def set_status(self, st: DeploymentStatus | None) -> None:
        """The latest status snapshot (None: there is none, e.g. the lab is down)."""
        self.status.snapshot = st


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


class StatusCollector(Collector):
    """The deployment's state as gauges, made from the latest snapshot at each scrape."""

    def __init__(self, vantage: str) -> None:
        self.vantage = vantage
        self.snapshot: DeploymentStatus | None = None

    def describe(self) -> Iterable[Metric]:
        return []  # made at scrape time: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        st, v = self.snapshot, self.vantage
        up = _gauge(
            "ecmptui_status_up",
            "1 when the last status poll read the inventory, 0 when it could not",
            ["vantage"],
        )
        up.add_metric([v], 0.0 if st is None or st.error else 1.0)
        yield up
        if st is None:
            return
        yield from self._nodes(st)
        if st.router is not None:
            yield from self._fabric(st)

    def _nodes(self, st: DeploymentStatus) -> Iterator[Metric]:
        v = self.vantage
        answering = _gauge(
            "ecmptui_node_answering", "1 when the node answered its last poll", ["vantage", "node"]
        )
        session = _gauge(
            "ecmptui_bgp_session_up",
            "1 when the node's BGP session with this router is Established",
            ["vantage", "node", "router", "family"],
        )
        announced = _gauge(
            "ecmptui_node_announced",
            "1 when some router has the node's route for the EIP of this family",
            ["vantage", "node", "family"],
        )
        withdrawn = _gauge(
            "ecmptui_node_withdrawn",
            "1 when an operator withdrew the EIP on the node (`node withdraw`)",
            ["vantage", "node"],
        )
        health = _gauge(
            "ecmptui_node_health_up",
            "The node's health check: 1 up, 0 down or stopped (absent: no health check)",
            ["vantage", "node"],
        )
        last = _gauge(
            "ecmptui_node_last_answer_timestamp_seconds",
            "Wall time of the node's last answer to a poll",
            ["vantage", "node"],
        )
        for n in st.nodes:
            answering.add_metric([v, n.name], float(n.answering))
            for p in n.peers:
                router = p.neighbor or p.protocol
                up = float(p.bgp_state == "Established")
                session.add_metric([v, n.name, router, str(p.family)], up)
            for family in st.eips:
                announced.add_metric([v, n.name, str(family)], float(n.announced_in(family)))
            withdrawn.add_metric([v, n.name], float(n.withdrawn))
            if n.health is not None:
                healthy = n.health.alive and n.health.state == "up"
                health.add_metric([v, n.name], float(healthy))
            if n.updated is not None:
                last.add_metric([v, n.name], n.updated)
        yield from (answering, session, announced, withdrawn, health, last)

    def _fabric(self, st: DeploymentStatus) -> Iterator[Metric]:
        v, router = self.vantage, st.router
        assert router is not None
        nexthops = _gauge(
            "ecmptui_fabric_nexthops",
            "Lab: the fabric's ECMP next hops for the EIP of this family",
            ["vantage", "family"],
        )
        forwards = _gauge(
            "ecmptui_fabric_forwards",
            "Lab: 1 when the fabric forwards the EIP of this family to the node",
            ["vantage", "node", "family"],
        )
        buckets = _gauge(
            "ecmptui_fabric_buckets",
            "Lab, resilient ECMP: the node's share of the next-hop group's buckets",
            ["vantage", "node", "family"],
        )
        for family in st.eips:
            nexthops.add_metric([v, str(family)], float(len(router.nexthops_for(family))))
            via = set(router.nodes_for(family))
            for n in st.nodes:
                forwards.add_metric([v, n.name, str(family)], float(n.name in via))
            for node, count in router.buckets_for(family).items():
                buckets.add_metric([v, node, str(family)], float(count))
        yield from (nexthops, forwards, buckets)
