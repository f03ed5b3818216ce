"""The dashboard's prober: started when there is an EIP, restarted when it changes or the
rate does, paused on request, retried when it fails to start."""

from __future__ import annotations

from ecmptui.dashboard.host import Dashboard
from ecmptui.errors import EcmpError
from ecmptui.family import Family
from ecmptui.limits import MAX_RATE, MIN_RATE
from ecmptui.traffic.flows import FlowEvent
from ecmptui.traffic.samples import Sample

PROBE_RETRY_S = 2.0  # a prober that failed to start is tried again


class ProberControl:
    """Runs the app's prober (one at a time, in the `probe` worker group)."""

    def __init__(self, app: Dashboard) -> None:
        self.app = app
        self.eip: str | None = None  # the EIP being probed (None: nothing deployed)
        self.family: Family | None = None  # the family probed (None: the deployment's first)
        self._starting = False

    def follow(self, eip: str | None) -> None:
        """Probe the EIP there is: start when one appears, stop (and forget the traffic)
        when it goes, restart when it changes."""
        app = self.app
        if eip == self.eip or not app.live:
            return
        self.eip = eip
        if eip is None:
            app.run_worker(self.stop(), group="probe-stop")
            if app.lab_down:  # the history stays: it shows what led up to it
                app.probe_state = "prober stopped: the lab is down"
            else:
                app.traffic.reset()
                app.probe_state = "prober idle: nothing is deployed"
        elif not app.paused:
            self.start()

    def start(self) -> None:
        self._starting = True
        self.app.run_worker(self._run(), exclusive=True, group="probe")

    async def _run(self) -> None:
        app = self.app
        try:
            await self.stop()
            app.probe_state = f"starting prober at {app.rate:.0f}/s…"
            try:
                app.stream = await app.cockpit.probe(
                    app.rate,
                    self._on_sample,
                    flows=app.flows,
                    on_flow=self._on_flow if app.flows else None,
                    family=self.family,
                )
            except EcmpError as exc:
                # e.g. the API answered oddly mid-provisioning: try again, visibly
                app.probe_state = f"prober failed: {exc}; retrying in {PROBE_RETRY_S:g} s"
                app.notify(str(exc), severity="error")
                app.set_timer(PROBE_RETRY_S, self._retry)
                return
            app.probe_state = f"probing{self._which()} at {app.rate:.0f}/s"
            self._running(True)
        finally:
            self._starting = False

    def _which(self) -> str:
        """ " the IPv6 EIP" while a dual stack is probed in one family; else nothing."""
        st = self.app.status
        if st is None or len(st.eips) < 2:
            return ""
        return f" the IPv{(self.family or Family(min(st.eips))).value} EIP"

    def toggle_family(self) -> None:
        """Probe the other family's EIP (a dual stack): the chart starts again, since its
        answers are of another service address."""
        app = self.app
        st = app.status
        families = sorted(Family(f) for f in st.eips) if st is not None else []
        if len(families) < 2:
            app.notify("this deployment serves one address family", severity="warning")
            return
        current = self.family or families[0]
        self.family = families[(families.index(current) + 1) % len(families)]
        app.traffic.reset()
        app.events.add(app.wall(), f"probing the IPv{self.family.value} EIP now")
        if not app.paused and self.eip is not None:
            self.start()

    def _on_sample(self, s: Sample) -> None:
        self.app.traffic.add(s)
        if self.app.metrics is not None:
            self.app.metrics.observe(s)

    def _on_flow(self, ev: FlowEvent) -> None:
        self.app.traffic.add_flow(ev)
        if self.app.metrics is not None:
            self.app.metrics.flow(ev)

    def _running(self, running: bool) -> None:
        if self.app.metrics is not None:
            self.app.metrics.set_prober(running)

    def _retry(self) -> None:
        """A prober that failed to start starts again while there is an EIP to probe."""
        app = self.app
        idle = app.stream is None and not self._starting
        if idle and not app.paused and app.live and self.eip is not None:
            self.start()

    async def stop(self) -> None:
        stream, self.app.stream = self.app.stream, None
        self._running(False)
        if stream is not None:
            await stream.stop()

    def toggle_pause(self) -> None:
        app = self.app
        app.paused = not app.paused
        if app.paused:
            app.run_worker(self.stop(), group="probe-stop")
            app.probe_state = "paused"
        else:
            self.start()

    def set_rate(self, rate: float) -> None:
        app = self.app
        if app.cockpit.fixed_rate is not None:
            app.notify(
                f"the server probes for every session at {app.rate:.0f}/s", severity="warning"
            )
            return
        rate = max(MIN_RATE, min(MAX_RATE, rate))
        if rate == app.rate:
            return
        app.rate = rate
        if app.stream is not None and not app.paused:
            self.start()
