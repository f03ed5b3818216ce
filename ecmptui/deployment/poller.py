"""A live status that cannot go stale silently: one loop per node, each with its own
deadline, so a node whose BIRD or SSH hangs is shown `unresponsive` within `node_timeout`
while every other node keeps updating; the inventory (the API) and the lab's routers have
loops of their own. Nothing is cancelled by the next poll: a loop only starts its next round
when the last one has ended (answered or timed out).

`snapshot()` puts the latest answers together at any moment; every node carries the wall
time of its last answer, so a view can say how old what it shows is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from ecmptui.deployment.gather import NodeOpener, api_status, node_status, router_status
from ecmptui.deployment.status import (
    WAITING,
    DeploymentStatus,
    NodeStatus,
    Observed,
    RouterStatus,
)
from ecmptui.errors import EcmpError
from ecmptui.waits import scaled

if TYPE_CHECKING:
    from ecmptui.deployment.port import Deployment
    from ecmptui.deployment.records import Inventory, NodeRecord

log = logging.getLogger(__name__)

NODE_TIMEOUT = 2.0  # a node that has not answered by then is `unresponsive`
ROUTER_TIMEOUT = 5.0


class StatusPoller:
    """Keeps the latest status of a deployment; `start()` it, read `snapshot()`."""

    def __init__(
        self,
        d: Deployment,
        opener: NodeOpener | None = None,
        interval: float = 1.0,
        node_timeout: float = NODE_TIMEOUT,
    ) -> None:
        self.d, self.opener = d, opener
        self.interval, self.node_timeout = interval, node_timeout
        self.api: dict[str, tuple[str, str | None]] = {}  # node -> the API's view
        self.inventory: Inventory | None = None
        self.error: str | None = None  # why the inventory could not be read
        self.nodes: dict[str, NodeStatus] = {}
        self.router: RouterStatus | None = None
        self._tasks: dict[str, asyncio.Task] = {}
        self._main: asyncio.Task | None = None
        self._first = asyncio.Event()  # the first inventory round has ended
        self.changed = asyncio.Event()  # set whenever something new arrived

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self._main is None:
            self._main = asyncio.get_running_loop().create_task(self._inventory_loop())

    async def stop(self) -> None:
        tasks = [t for t in [self._main, *self._tasks.values()] if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._main, self._tasks = None, {}

    async def wait_first(self, timeout: float = 15.0) -> None:
        """Wait (bounded) until the inventory has been read once, or failed to be."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first.wait(), timeout)

    # -- the loops -------------------------------------------------------------------------
    async def _inventory_loop(self) -> None:
        while True:
            t0 = time.monotonic()
            try:
                inv = await self.d.ainventory()
                self.inventory, self.error = inv, None
                views = await asyncio.gather(*(api_status(self.d, r) for r in inv.nodes))
                self.api = {r.name: v for r, v in zip(inv.nodes, views, strict=True)}
            except EcmpError as exc:
                self.error = str(exc)
            except Exception as exc:  # never let a surprise end the dashboard's status
                log.exception("inventory failed")
                self.error = f"inventory failed: {type(exc).__name__}: {exc}"
            self._sync_tasks()
            self._first.set()
            self.changed.set()
            await asyncio.sleep(max(0.05, self.interval - (time.monotonic() - t0)))

    def _sync_tasks(self) -> None:
        """One loop per node in the inventory (and the router's), no more."""
        inv = self.inventory  # the last one read: SSH works through an API outage
        names = {r.name for r in inv.nodes} if inv is not None else set()
        loop = asyncio.get_running_loop()
        for name in names - set(self._tasks) - {"router"}:
            self._tasks[name] = loop.create_task(self._node_loop(name))
        for name in set(self._tasks) - names - {"router"}:
            self._tasks.pop(name).cancel()
            self.nodes.pop(name, None)
        if "router" not in self._tasks and self.d.target.caps.router_view:
            self._tasks["router"] = loop.create_task(self._router_loop())

    def _record(self, name: str) -> NodeRecord | None:
        inv = self.inventory
        return next((r for r in inv.nodes if r.name == name), None) if inv else None

    async def _node_loop(self, name: str) -> None:
        while True:
            t0 = time.monotonic()
            rec = self._record(name)
            if rec is None or self.inventory is None:
                return
            # a loaded machine answers slowly, not never: the deadline grows with its load
            limit = scaled(self.node_timeout)
            try:
                st = await asyncio.wait_for(
                    node_status(
                        self.d, rec, list(self.inventory.eips.values()), self.opener, with_api=False
                    ),
                    limit,
                )
                st.updated = time.time()
            except TimeoutError:
                # the command was cancelled, which also drops its SSH shell: next round
                # opens a new one instead of queueing behind a hung birdc
                st = self._unresponsive(rec, limit)
            except Exception as exc:
                log.exception("status of %s failed", name)
                st = replace(
                    self._unresponsive(rec),
                    bgp_state=Observed.UNREACHABLE,
                    error=f"{type(exc).__name__}: {exc}",
                )
            self.nodes[name] = st
            self.changed.set()
            await asyncio.sleep(max(0.05, self.interval - (time.monotonic() - t0)))

    def _unresponsive(self, rec: NodeRecord, limit: float | None = None) -> NodeStatus:
        last = self.nodes.get(rec.name) or NodeStatus(
            rec.name, rec.index, rec.device_id, rec.mgmt_address
        )
        return replace(
            last,
            bgp_state=Observed.UNRESPONSIVE,
            peers=[],
            error=f"no answer within {limit or self.node_timeout:.1f} s (BIRD or SSH hung)",
            last_error=None,
        )

    async def _router_loop(self) -> None:
        while True:
            t0 = time.monotonic()
            inv = self.inventory
            if inv is not None:
                try:
                    self.router = await asyncio.wait_for(
                        asyncio.to_thread(router_status, self.d, inv), ROUTER_TIMEOUT
                    )
                except (TimeoutError, EcmpError, OSError) as exc:
                    log.info("router view failed: %s", exc)
                    self.router = None
                self.changed.set()
            await asyncio.sleep(max(0.05, self.interval - (time.monotonic() - t0)))

    # -- reading ---------------------------------------------------------------------------
    def snapshot(self) -> DeploymentStatus:
        """The latest answers put together; an EcmpError when the inventory could never
        be read."""
        inv = self.inventory
        if inv is None:
            raise EcmpError(self.error or "no status yet")
        nodes = []
        for r in inv.nodes:
            st = self.nodes.get(r.name) or NodeStatus(
                r.name, r.index, r.device_id, r.mgmt_address, bgp_state=WAITING
            )
            view, api_error = self.api.get(r.name, ("unknown", None))
            nodes.append(replace(st, api_status=view, error=st.error or api_error))
        return DeploymentStatus(
            inv.target,
            inv.eip,
            nodes,
            self.router,
            updated=time.time(),
            error=self.error,
            eip6=inv.eip6,
        )
