"""What the dashboard asks of a deployment, in one place and without any UI.

The app calls these from workers; every failure is an EcmpError with one line to show.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from ecmptui.actions import Action, Kind
from ecmptui.config import Settings
from ecmptui.deployment.lock import DeploymentLock
from ecmptui.deployment.port import Target
from ecmptui.deployment.steps import StepEvent
from ecmptui.errors import EcmpError
from ecmptui.family import Family
from ecmptui.jsonish import JsonObject
from ecmptui.traffic.samples import Sample

if TYPE_CHECKING:  # the heavy parts (SSH, HTTP, API) load when first used
    from ecmptui.deployment.inventory import ApiDeployment, NodePool
    from ecmptui.deployment.poller import StatusPoller
    from ecmptui.deployment.port import Deployment, FibWatch
    from ecmptui.deployment.provision import Provisioner
    from ecmptui.deployment.status import DeploymentStatus
    from ecmptui.traffic.flows import FlowEvent


class SampleStream(Protocol):
    """What the dashboard holds while samples flow (a prober, or a served feed)."""

    @property
    def running(self) -> bool: ...

    async def stop(self) -> None: ...


class ReadOnlyError(EcmpError):
    """An action that changes something was asked for in read-only mode."""


class Cockpit(abc.ABC):
    """What a dashboard asks of a deployment: the base of the local cockpit (it runs
    everything here) and the served session's (`serve.client.FeedCockpit`: the server runs
    it, for every session)."""

    shared_timeline = False  # a served session's actions are recorded by the server

    def __init__(
        self, settings: Settings, read_only: bool = False, target: Target | None = None
    ) -> None:
        self.settings = settings
        self.read_only = read_only
        if target is None:  # the configured one (the composition root picks the adapter)
            from ecmptui.targets import target_for

            target = target_for(settings)
        self.target = target
        self.warnings: list[str] = []  # what the dashboard should tell the operator

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def _guard(self, what: str) -> None:
        if self.read_only:
            raise ReadOnlyError(f"read-only session: cannot {what}")

    # -- target ----------------------------------------------------------------------------
    def target_label(self) -> str:
        return self.target.label()

    @property
    def fixed_rate(self) -> float | None:
        """The probe rate when someone else sets it (a served session); None: ours."""
        return None

    def actions(self) -> list[Action]:
        """The node actions this target offers (a read-only session is refused them when
        it asks; the buttons still show what exists)."""
        return self.target.actions()

    @property
    def provisions(self) -> bool:
        """Whether ecmptui provisions on this target (else: it checks configured nodes)."""
        return self.target.caps.api

    def lab_up(self) -> bool | None:
        """True/False for a lab target, None for other targets."""
        return self.target.lab_up()

    @abc.abstractmethod
    def project_label(self) -> str: ...

    @abc.abstractmethod
    async def start_lab(self, progress: Callable[[str], None] | None = None) -> str:
        """`lab up`; `progress` gets the image build's stages (called from a thread)."""

    # -- reading ---------------------------------------------------------------------------
    @abc.abstractmethod
    async def status(self) -> DeploymentStatus:
        """The latest status snapshot."""

    @abc.abstractmethod
    async def probe(
        self,
        rate: float,
        on_sample: Callable[[Sample], None],
        timeout: float = 1.0,
        flows: int = 0,
        on_flow: Callable[[FlowEvent], None] | None = None,
        family: Family | None = None,
        netns: str | None = None,
    ) -> SampleStream:
        """Samples of the EIP (of `family`; None: the deployment's first) flow to
        `on_sample` until the stream is stopped; `netns`: probe from there instead."""

    @abc.abstractmethod
    def fib_ms(self, t: float) -> float | None:
        """ms from `t` to the fabric's next FIB change for the EIP (None: none yet)."""

    @abc.abstractmethod
    async def reset(self) -> None:
        """Forget the deployment and its connections (the lab was restarted, or went)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close what it holds (when the dashboard ends)."""

    # -- changing --------------------------------------------------------------------------
    @abc.abstractmethod
    async def check_nodes(self) -> list[JsonObject]:
        """What each node looks like, and the service end to end (nothing is changed)."""

    @abc.abstractmethod
    def provision(self, **overrides: Any) -> tuple[Any, AsyncIterator[StepEvent]]:
        """The guide's steps: (what reports the outcome when done, their events)."""

    @abc.abstractmethod
    def deprovision(self) -> AsyncIterator[StepEvent]: ...

    @abc.abstractmethod
    async def act(
        self, node_name: str, action: Action, on_effect: Callable[[float], None] | None = None
    ) -> str:
        """Run a registry action on one node; `on_effect(t)`: when it takes effect."""

    @abc.abstractmethod
    async def drain(
        self,
        node_name: str,
        timeout: float = 60.0,
        on_progress: Callable[[str], None] | None = None,
    ) -> tuple[str, str]:
        """`node drain`: (the timeline's gist, the whole story)."""

    @abc.abstractmethod
    async def router_act(
        self, router: str, action: str, on_effect: Callable[[float], None] | None = None
    ) -> str:
        """A core router action (a fault, or restore)."""


class LocalCockpit(Cockpit):
    """The cockpit that runs everything itself, on the configured target."""

    def __init__(
        self,
        settings: Settings,
        read_only: bool = False,
        target: Target | None = None,
        poll_s: float = 1.0,
    ) -> None:
        super().__init__(settings, read_only, target)
        self.poll_s = poll_s  # how often the status poller asks each node and the API
        self._deployment: Deployment | None = None
        self._pool: NodePool | None = None
        self._poller: StatusPoller | None = None
        self.fib: FibWatch | None = None

    async def start_lab(self, progress: Callable[[str], None] | None = None) -> str:
        self._guard("start the lab")
        msg = await asyncio.to_thread(self.target.start_lab, progress)
        await self.reset()
        return msg

    def deployment(self) -> Deployment:
        if self._deployment is None:
            self._deployment = self.target.open()
        return self._deployment

    def api_deployment(self) -> ApiDeployment:
        """The deployment, where it has an API (provision, deprovision)."""
        from ecmptui.deployment.inventory import ApiDeployment

        d = self.deployment()
        if not isinstance(d, ApiDeployment):
            raise EcmpError(
                f"target {self.target.kind.value}: ecmptui did not provision these "
                "nodes (use Check nodes)"
            )
        return d

    def project_label(self) -> str:
        if not self.target.caps.api:
            return "static inventory"
        try:
            return self.api_deployment().endpoint.project_id
        except EcmpError:
            return "-"

    # -- reading ---------------------------------------------------------------------------
    async def status(self) -> DeploymentStatus:
        """The latest status (a poller keeps it: one loop per node, each with its own
        deadline; the first call waits for the first round)."""
        from ecmptui.deployment.inventory import NodePool
        from ecmptui.deployment.poller import StatusPoller

        if self._poller is None:
            d = self.deployment()
            self._pool = NodePool(d)
            self._poller = StatusPoller(d, self._pool.node, interval=self.poll_s)
            self._poller.start()
            await self._poller.wait_first()
        return self._poller.snapshot()

    async def reset(self) -> None:
        """Forget the deployment and its connections (the lab was restarted, or went)."""
        if self._poller is not None:
            await self._poller.stop()
            self._poller = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        self._deployment = None

    async def close(self) -> None:
        """Close pooled connections and the FIB watch (call when the dashboard ends)."""
        await self.reset()
        if self.fib is not None:
            await self.fib.stop()
            self.fib = None

    # -- changing --------------------------------------------------------------------------
    def writer(self, what: str) -> DeploymentLock:
        """The deployment's writer lock (refused at once with `busy: ...` if held)."""
        return DeploymentLock(self.target.lock_key(), f"{what} (dashboard)")

    async def _locked(
        self, what: str, events: AsyncIterator[StepEvent]
    ) -> AsyncIterator[StepEvent]:
        with self.writer(what):
            async for ev in events:
                yield ev

    async def check_nodes(self) -> list[JsonObject]:
        """What each node looks like, and the service end to end (nothing is changed)."""
        from ecmptui.traffic.service import check

        return await check(self.deployment())

    def provision(self, **overrides: Any) -> tuple[Provisioner, AsyncIterator[StepEvent]]:
        self._guard("provision")
        d = self.api_deployment()
        settings = self.settings
        prov_fields = {k: v for k, v in overrides.items() if v is not None}
        if prov_fields:
            from ecmptui.config import validate

            settings = validate(
                replace(
                    settings,
                    provision=replace(settings.provision, **prov_fields),
                    source="dashboard",
                )
            )
        from ecmptui.deployment.inventory import ApiDeployment
        from ecmptui.deployment.provision import Provisioner
        from ecmptui.traffic.service import verify

        target = ApiDeployment(settings, d.target, d.endpoint)
        prov = Provisioner(target, end_to_end=lambda: verify(target))
        return prov, self._locked("provision", prov.run())

    def deprovision(self) -> AsyncIterator[StepEvent]:
        self._guard("deprovision")
        from ecmptui.deployment.provision import deprovision

        return self._locked("deprovision", deprovision(self.api_deployment()))

    async def act(
        self, node_name: str, action: Action, on_effect: Callable[[float], None] | None = None
    ) -> str:
        """Run a registry action on one node (`deployment.operate.perform`) on a connection
        of its own. `on_effect(t)`: the moment the action takes effect."""
        self._guard(f"{action.name} {node_name}")
        from ecmptui.deployment import operate

        d = self.deployment()
        operate.check_allowed(d, action)
        if action.kind is Kind.DEVICE:
            inv = await d.ainventory()
        else:  # SSH-only: works through an API outage with the last known inventory
            inv = await asyncio.to_thread(d.inventory_or_last, self.warn)
        rec = inv.node(node_name)
        # a connection of its own: an action never queues behind a status poll (which may
        # be stuck on a frozen BIRD)
        with self.writer(f"{action.name} {rec.name}"):
            return f"{rec.name}: " + await operate.perform(d, rec, action, on_effect=on_effect)

    async def drain(
        self,
        node_name: str,
        timeout: float = 60.0,
        on_progress: Callable[[str], None] | None = None,
    ) -> tuple[str, str]:
        """`node drain` (a resilient-ECMP lab router only; elsewhere it says why not)."""
        self._guard(f"drain {node_name}")
        from ecmptui.deployment.drain import drain

        d = self.api_deployment()
        inv = await d.ainventory()
        if not inv.eips:
            raise EcmpError("nothing is deployed: no EIP to drain from")
        rec = inv.node(node_name)
        with self.writer(f"drain {rec.name}"):
            result = await drain(d, rec, list(inv.eips.values()), timeout, on_progress)
        return result.short(), result.line()

    async def router_act(
        self, router: str, action: str, on_effect: Callable[[float], None] | None = None
    ) -> str:
        """A lab core router action (fault or restore)."""
        self._guard(f"{action} {router}")
        from ecmptui.deployment import operate

        with self.writer(f"router {action} {router}"):
            return f"{router}: " + await operate.perform_router(
                self.deployment(), router, action, on_effect=on_effect
            )

    async def probe(
        self,
        rate: float,
        on_sample: Callable[[Sample], None],
        timeout: float = 1.0,
        flows: int = 0,
        on_flow: Callable[[FlowEvent], None] | None = None,
        family: Family | None = None,
        netns: str | None = None,
    ) -> SampleStream:
        """A prober of the deployment's EIP (of `family`), from the target's probe
        namespace or `netns` (a vantage site)."""
        from ecmptui.traffic.probe_stream import ProbeStream

        d = self.deployment()
        inv = await d.ainventory()
        url, default_netns = d.probe_target(inv, family)
        netns = netns or default_netns
        stream = ProbeStream(url, rate, timeout, netns, on_sample, flows=flows, on_flow=on_flow)
        await stream.start()
        eip = inv.eip_for(family or inv.families[0])
        if self.fib is not None and self.fib.address != eip:  # another family's EIP now
            await self.fib.stop()
            self.fib = None
        if self.fib is None:
            self.fib = self.target.fib_watch(eip)
            if self.fib is not None:
                await self.fib.start()
        return stream

    def fib_ms(self, t: float) -> float | None:
        """Lab: ms from `t` to the fabric's next FIB change for the EIP (None: none yet)."""
        return self.fib.first_change_after(t) if self.fib is not None else None
