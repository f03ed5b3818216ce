"""What the dashboard asks of a deployment, in one place and without any UI.

The app calls these from workers; every failure is an EcmpError with one line to show.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

from typing import TYPE_CHECKING

from ecmptui.config import Settings
from ecmptui.errors import EcmpError
from ecmptui.samples import Sample
from ecmptui.steps import DEVICE_ACTIONS, FAULTS, NODE_ACTIONS, StepEvent

if TYPE_CHECKING:  # the heavy parts (SSH, HTTP, API) load when first used
    from ecmptui.probe_stream import ProbeStream
    from ecmptui.provision import Provisioner

FAULT_ACTIONS = FAULTS + ("restore",)


class ReadOnlyError(EcmpError):
    """An action that changes something was asked for in read-only mode."""


class Cockpit:
    """The deployment as the dashboard sees it."""

    def __init__(self, settings: Settings, read_only: bool = False) -> None:
        self.settings = settings
        self.read_only = read_only
        self._deployment = None
        self._pool = None

    # -- target ----------------------------------------------------------------------------
    @property
    def is_lab(self) -> bool:
        return self.settings.target == "lab"

    def target_label(self) -> str:
        if self.is_lab:
            return f"lab {self.settings.lab}"
        if self.settings.target == "static":
            return f"static ({len(self.settings.static.nodes)} nodes)"
        return f"{self.settings.target} {self.settings.metal.endpoint}"

    def lab_up(self) -> bool | None:
        """True/False for a lab target, None for other targets."""
        if not self.is_lab:
            return None
        from ecmptui.lab import control
        from ecmptui.lab.instance import LabInstance

        return control.read_info(LabInstance(self.settings.lab)) is not None

    async def start_lab(self, progress: Callable[[str], None] | None = None) -> str:
        """`lab up`; `progress` gets the image build's stages (called from a thread) when
        the machine image has to be built first."""
        self._guard("start the lab")
        from ecmptui.lab import control
        from ecmptui.lab.instance import LabInstance

        info, _ = await asyncio.to_thread(control.up, LabInstance(self.settings.lab),
                                          progress=progress)
        self._deployment = None
        return f"lab {self.settings.lab} is up at {info.endpoint}"

    @property
    def is_static(self) -> bool:
        return self.settings.target == "static"

    def deployment(self):
        if self._deployment is None:
            from ecmptui.inventory import open_deployment

            self._deployment = open_deployment(self.settings)
        return self._deployment

    def project_label(self) -> str:
        if self.is_static:
            return "static inventory"
        try:
            return self.deployment().target.project_id
        except EcmpError:
            return "-"

    # -- reading ---------------------------------------------------------------------------
    async def status(self) -> dict:
        from ecmptui.status import gather

        from ecmptui.inventory import NodePool

        if self._pool is None:
            self._pool = NodePool(self.deployment())
        return await gather(self.deployment(), self._pool.node)

    async def close(self) -> None:
        """Close pooled connections (call when the dashboard ends)."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    # -- changing --------------------------------------------------------------------------
    def _guard(self, what: str) -> None:
        if self.read_only:
            raise ReadOnlyError(f"read-only session: cannot {what}")

    async def check_nodes(self) -> list[dict]:
        """Static target: what each node looks like (nothing is changed)."""
        from ecmptui.static import check_all

        return await check_all(self.deployment())

    def provision(self, **overrides) -> tuple["Provisioner", AsyncIterator[StepEvent]]:
        self._guard("provision")
        if self.is_static:
            raise EcmpError("target static: nothing to provision (use Check nodes)")
        settings = self.settings
        prov_fields = {k: v for k, v in overrides.items() if v is not None}
        if prov_fields:
            from ecmptui.config import validate

            settings = validate(replace(settings, provision=replace(settings.provision,
                                                                    **prov_fields),
                                        source="dashboard"))
        from ecmptui.inventory import Deployment
        from ecmptui.provision import Provisioner

        prov = Provisioner(Deployment(settings, self.deployment().target))
        return prov, prov.run()

    def deprovision(self) -> AsyncIterator[StepEvent]:
        self._guard("deprovision")
        if self.is_static:
            raise EcmpError("target static: ecmptui did not provision these nodes")
        from ecmptui.provision import deprovision

        return deprovision(self.deployment())

    async def act(self, node_name: str, action: str,
                  on_effect: Callable[[float], None] | None = None) -> str:
        """withdraw/announce/shutdown/start anywhere; faults and restore in the lab.

        `on_effect(t)` is called with the monotonic time just before the command that takes
        effect, after the SSH connection is set up, so measurements start at the action."""
        self._guard(f"{action} {node_name}")
        if action not in NODE_ACTIONS + FAULT_ACTIONS + DEVICE_ACTIONS:
            raise EcmpError(f"unknown action {action!r}")
        if action in FAULT_ACTIONS and not self.is_lab:
            raise EcmpError("faults are lab-only")
        from ecmptui import node as node_mod

        d = self.deployment()
        rec = (await d.ainventory()).node(node_name)
        if action == "reboot":
            if on_effect is not None:
                on_effect(time.monotonic())
            took = await d.reboot(rec)
            return f"{rec.name}: rebooted, back and announcing after {took:.1f} s"
        opener = self._pool.node if self._pool is not None else d.node
        async with opener(rec) as node:
            if on_effect is not None:
                on_effect(time.monotonic())
            if action in node_mod.FAULTS:
                await node_mod.inject_fault(node, action)
            elif action == "restore":
                undone = await node_mod.restore(node)
                return f"{rec.name}: restored ({', '.join(undone) or 'nothing to undo'})"
            else:
                await getattr(node, action)()
        return f"{rec.name}: {action} done"

    async def probe(self, rate: float, on_sample: Callable[[Sample], None],
                    timeout: float = 1.0) -> "ProbeStream":
        from ecmptui.probe_stream import ProbeStream

        d = self.deployment()
        url, netns = d.probe_target(await d.ainventory())
        stream = ProbeStream(url, rate, timeout, netns, on_sample)
        await stream.start()
        return stream
