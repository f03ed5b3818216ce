"""`ecmptui exporter`: the prober and the status poller headless, for Prometheus.

It probes the deployment's EIP at a steady rate, polls its status once a second, and keeps
the metrics up to date; actions a node's health check takes are measured as the dashboard
measures them. The prober is started again if it stops (said on the log and in
`ecmptui_prober_running`); nothing it fails at ends the exporter but a signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ecmptui.errors import EcmpError
from ecmptui.metrics.probe_metrics import ProbeMetrics
from ecmptui.traffic.model import TrafficModel
from ecmptui.traffic.timeline import EventLog, record_changes

if TYPE_CHECKING:
    from ecmptui.cockpit import Cockpit, SampleStream
    from ecmptui.deployment.status import DeploymentStatus
    from ecmptui.family import Family
    from ecmptui.traffic.flows import FlowEvent
    from ecmptui.traffic.samples import Sample

log = logging.getLogger("ecmptui.exporter")

STATUS_INTERVAL_S = 1.0
TICK_S = 0.25  # actions are measured this often
RESTART_S = 2.0  # a prober that stopped or failed to start is tried again after this


class Exporter:
    """Feeds `metrics` from `cockpit`'s status and prober until `stop` is set."""

    def __init__(
        self,
        cockpit: Cockpit,
        metrics: ProbeMetrics,
        rate: float,
        flows: int = 0,
        family: Family | None = None,
        netns: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cockpit, self.metrics = cockpit, metrics
        self.rate, self.flows, self.family, self.netns = rate, flows, family, netns
        self.clock = clock
        self.traffic = TrafficModel()
        self.events = EventLog()
        self.status: DeploymentStatus | None = None
        self.stream: SampleStream | None = None
        self._eip: str | None = None  # the EIP the prober runs for
        self._next_start = 0.0

    def _on_sample(self, s: Sample) -> None:
        self.traffic.add(s)
        self.metrics.observe(s)

    def _on_flow(self, ev: FlowEvent) -> None:
        self.traffic.add_flow(ev)
        self.metrics.flow(ev)

    async def run(self, stop: asyncio.Event) -> None:
        tick = asyncio.create_task(self._tick_loop())
        try:
            while not stop.is_set():
                await self._poll()
                await self._keep_prober()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), STATUS_INTERVAL_S)
        finally:
            tick.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tick
            await self._stop_prober()

    async def _poll(self) -> None:
        try:
            st = await self.cockpit.status()
        except EcmpError as exc:
            if self.status is not None:
                log.warning("status: %s", exc)
            self.status = None
            self.metrics.set_status(None)
            return
        if st.error:
            log.warning("status: %s", st.error)
        before = len(self.events)
        record_changes(self.events, self.traffic, self.status, st, self.clock)
        for entry in list(self.events)[before:]:
            log.info("%s", entry.text)
        self.status = st
        self.metrics.set_status(st)

    async def _keep_prober(self) -> None:
        """One prober for the EIP there is: started when one appears, restarted when it
        changes or the prober stopped, stopped when the EIP goes."""
        st = self.status
        eip = None
        if st is not None and st.eips:
            eip = st.eips.get(self.family.value) if self.family else st.first_eip
        stream = self.stream
        if stream is not None and stream.running and eip == self._eip:
            return
        if stream is not None:
            if eip == self._eip and eip is not None:
                log.error("the prober stopped; starting it again in %g s", RESTART_S)
                self._next_start = self.clock() + RESTART_S
            await self._stop_prober()
        self._eip = eip
        if eip is None or self.clock() < self._next_start:
            return
        try:
            self.stream = await self.cockpit.probe(
                self.rate,
                self._on_sample,
                flows=self.flows,
                on_flow=self._on_flow if self.flows else None,
                family=self.family,
                netns=self.netns,
            )
        except EcmpError as exc:
            log.error("prober failed to start: %s; trying again in %g s", exc, RESTART_S)
            self._next_start = self.clock() + RESTART_S
            return
        where = f" from {self.netns}" if self.netns else ""
        log.info("probing %s at %g/s%s", eip, self.rate, where)
        self.metrics.set_prober(True)

    async def _stop_prober(self) -> None:
        stream, self.stream = self.stream, None
        self.metrics.set_prober(False)
        if stream is not None:
            await stream.stop()

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            now = self.clock()
            self.traffic.prune(now)
            for rec in self.traffic.settle(now, fib_ms=self.cockpit.fib_ms):
                self.metrics.action(rec)
