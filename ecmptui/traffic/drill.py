"""Scripted failover scenarios: act on a node while probing, measure, restore, verify.

Each scenario starts from a healthy deployment, acts on one node, waits until traffic is
steady on the others (or a time limit), restores, waits until the node answers again and
checks that `status` is what it was before.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ecmptui.actions import ACTIONS, Action, Kind
from ecmptui.deployment import operate
from ecmptui.deployment.gather import gather, wait_fabric_drops
from ecmptui.deployment.inventory import ApiDeployment, Inventory, NodeRecord
from ecmptui.deployment.port import Deployment
from ecmptui.deployment.provision import set_bfd
from ecmptui.deployment.status import DeploymentStatus
from ecmptui.display import health_label
from ecmptui.errors import EcmpError
from ecmptui.family import Family
from ecmptui.jsonish import JsonObject
from ecmptui.node import faults
from ecmptui.node import health as node_health
from ecmptui.node.daemon_names import DAEMON_LABELS
from ecmptui.node.server import Node
from ecmptui.traffic import series
from ecmptui.traffic.failover import Failover, analyse, back_after_ms, first_answer_ms, steady_since
from ecmptui.traffic.flows import disruption, flows_on
from ecmptui.traffic.probe_stream import ProbeStream
from ecmptui.traffic.series import Mark, Series

if TYPE_CHECKING:
    from ecmptui.deployment.port import FibWatch


@dataclass(frozen=True)
class Scenario:
    """A drill scenario: an action of the registry that takes a node out of service, and
    the action that puts it back (none: the node comes back by itself, as after a reboot)."""

    action: Action
    undo: Action | None

    @property
    def name(self) -> str:
        return self.action.name

    @property
    def lab_only(self) -> bool:
        return self.action.lab_only

    @property
    def via_api(self) -> bool:
        return self.action.kind is Kind.DEVICE

    async def act(self, node: Node) -> None:
        await operate.on_node(node, self.action)

    async def restore(self, node: Node) -> None:
        if self.undo is not None:
            await operate.on_node(node, self.undo)


@dataclass(frozen=True)
class RouterScenario:
    """A lab core router broken (kill, freeze, isolate) while traffic flows, then restored:
    with two routers, nothing should fail."""

    name: str
    fault: str
    router: str = "core1"
    lab_only: bool = True
    via_api: bool = False


SCENARIOS: dict[str, Scenario | RouterScenario | MembershipScenario] = {
    a.name: Scenario(a, ACTIONS[a.undo] if a.undo else None)
    for a in ACTIONS.values()
    if a.out_of_service
}
SCENARIOS.update(
    {
        f"router-{short}": RouterScenario(f"router-{short}", fault)
        for short, fault in (
            ("kill", "kill-bird"),
            ("freeze", "freeze-bird"),
            ("isolate", "isolate"),
        )
    }
)


@dataclass(frozen=True)
class MembershipScenario:
    """A node leaving (`remove-node`: withdrawn) or joining (`add-node`: withdrawn, then
    announced to flows opened while it was out) the ECMP set, measured by what it does to
    long-lived flows."""

    name: str
    lab_only: bool = False
    via_api: bool = False


SCENARIOS.update({n: MembershipScenario(n) for n in ("remove-node", "add-node")})
MEMBERSHIP_FLOWS = 100  # flows kept for these scenarios when --flows does not say
FLOW_SETTLE_S = 3.0  # after a change, how long flows have to break and come back
ROUTER_WATCH_S = 5.0  # longer than the hold time (3 s): every session that can fail has
REBOOT_TIMEOUT = 90.0


@dataclass
class ScenarioResult:
    name: str
    bfd: bool
    health: bool | None  # the node's health check during the scenario (None: none)
    node: str
    convergence_ms: float | None
    last_answer_ms: float | None
    recovery_ms: float | None
    failed: dict[str, int]
    before: dict[str, int]
    after: dict[str, int]
    recovered: bool
    requests: int
    notes: list[str] = field(default_factory=list)
    fib_ms: float | None = None  # lab: when the fabric's route for the EIP changed
    flows: JsonObject | None = None  # with flows: how many, and how many the change broke
    family: int = 4  # the address family probed (the EIP of that family)
    daemon: str | None = None  # the routing daemon of the node acted on (bird, frr)
    chart: Series | None = None  # answers and failures over time, for the HTML report

    def to_json(self) -> JsonObject:
        d = asdict(self)
        d["chart"] = self.chart.to_json() if self.chart is not None else None
        d["failed"] = {k: self.failed.get(k, 0) for k in ("refused", "reset", "timeout")} | {
            k: v for k, v in self.failed.items() if k not in ("refused", "reset", "timeout")
        }
        return d


def health_key(st: DeploymentStatus) -> tuple[Any, ...]:
    """The parts of `status` a scenario must leave as it found them."""
    nodes = tuple(
        (
            n.name,
            n.bgp_state,
            n.routes_exported,
            (n.withdrawn, tuple(n.withdrawn_families)),
            n.eip_on_lo,
            health_label(n.health),
        )
        for n in st.nodes
    )
    router = (
        (tuple(sorted(st.router.nodes)), tuple(sorted(st.router.nodes6))) if st.router else None
    )
    return nodes, router


def _healthy(st: DeploymentStatus) -> bool:
    """Every node announcing to every peer, and (lab) every router and the fabric know it."""
    ok = all(
        n.established
        and not n.withdrawn
        and n.peers
        and all(p.bgp_state == "Established" and p.routes_exported >= 1 for p in n.peers)
        for n in st.nodes
    )
    if st.router is not None:
        names = sorted(n.name for n in st.nodes)
        for family in st.eips:  # every family the deployment serves
            ok = (
                ok
                and sorted(st.router.nodes_for(family)) == names
                and all(sorted(c.learned_for(family)) == names for c in st.router.cores)
            )
    return ok


async def wait_healthy(d: Deployment, timeout: float, hold: float = 1.0) -> DeploymentStatus | None:
    """A healthy snapshot that stayed healthy for `hold` seconds (a BIRD reconfigure can
    restart sessions a moment after it returns: one healthy reading is not enough)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        first = await wait_status(d, _healthy, max(0.0, deadline - time.monotonic()))
        if first is None:
            return None
        await asyncio.sleep(hold)
        again = await gather(d)
        if _healthy(again):
            return again
    return None


async def wait_status(
    d: Deployment, predicate: Callable[[DeploymentStatus], bool], timeout: float
) -> DeploymentStatus | None:
    deadline = time.monotonic() + timeout
    while True:
        st = await gather(d)
        if predicate(st):
            return st
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(0.25)


class Drill:
    """Runs scenarios against one deployment; `events` receives progress lines."""

    def __init__(
        self,
        d: Deployment,
        *,
        rate: float = 200.0,
        timeout: float = 1.0,
        node: str | None = None,
        settle_s: float = 1.0,
        limit_s: float = 8.0,
        on_event: Callable[[str], None] | None = None,
        flows: int = 0,
        flow_interval: float = 0.5,
        family: Family | None = None,
    ) -> None:
        self.d, self.rate, self.timeout = d, rate, timeout
        self.family = family  # the EIP probed (None: the deployment's first family)
        self.flows, self.flow_interval = flows, flow_interval
        self.node_name, self.settle_s, self.limit_s = node, settle_s, limit_s
        self.on_event = on_event or (lambda _msg: None)
        self._fib: FibWatch | None = None
        self._daemons: dict[str, str] = {}  # node -> its routing daemon, from the baseline
        # what must be undone if the drill is interrupted between an action and its restore
        self._pending: tuple[str, Callable[[], Awaitable[object]]] | None = None

    def _allowed(self, sc: Scenario | RouterScenario | MembershipScenario) -> bool:
        caps = self.d.target.caps
        return (not sc.lab_only or caps.faults) and (not sc.via_api or caps.api)

    def plan(
        self, names: list[str] | None
    ) -> list[tuple[Scenario | RouterScenario | MembershipScenario, bool | None]]:
        """(scenario, bfd) pairs; bfd None keeps the current setting. Lab faults run with
        and without BFD; `run` also runs stop-nginx with the health check paused."""
        if not names:  # every scenario this target allows
            names = [n for n, sc in SCENARIOS.items() if self._allowed(sc)]
        unknown = [n for n in names if n not in SCENARIOS]
        if unknown:
            raise EcmpError(f"unknown scenario {unknown[0]!r} (one of {', '.join(SCENARIOS)})")
        out: list[tuple[Scenario | RouterScenario | MembershipScenario, bool | None]] = []
        for name in names:
            sc = SCENARIOS[name]
            if sc.lab_only and not self.d.target.caps.faults:
                raise EcmpError(
                    f"scenario {name!r} injects a fault: lab only (this target "
                    "allows withdraw and shutdown)"
                )
            if sc.via_api and not self.d.target.caps.api:
                raise EcmpError(f"scenario {name!r} needs the API (lab or metal target)")
            out += [(sc, True), (sc, False)] if sc.lab_only else [(sc, None)]
        return out

    async def run(self, names: list[str] | None = None) -> list[ScenarioResult]:
        plan = self.plan(names)
        inv = await self.d.ainventory()
        if len(inv.nodes) < 2 or not inv.eips:
            raise EcmpError(
                "a drill needs an EIP announced by at least 2 nodes: run `ecmptui provision` first"
            )
        self.family = self.family or inv.families[0]
        eip = inv.eip_for(self.family)
        target = inv.node(self.node_name) if self.node_name else inv.nodes[-1]
        baseline = await wait_healthy(self.d, 20)
        if baseline is None:
            st = await gather(self.d)
            left = "; ".join(
                f"{n.name} carries {', '.join(n.faults)} (undo: ecmptui node restore {n.name})"
                for n in st.nodes
                if n.faults
            )
            raise EcmpError(
                "the deployment is not healthy (every node Established and "
                "announcing): " + (left or "fix that") + " before a drill"
            )
        self._daemons = {n.name: n.daemon for n in baseline.nodes if n.daemon}
        self._fib = self.d.target.fib_watch(eip)
        if self._fib is not None:
            await self._fib.start()
        original_bfd = await self._bfd_now(target)
        current_bfd = original_bfd
        async with self.d.node(target) as node:
            has_health = await node_health.health_running(node)
        results = []
        try:
            for sc, bfd in plan:
                if bfd is not None and bfd != current_bfd:
                    self.on_event(f"BFD {'on' if bfd else 'off'} on every node")
                    # on the nodes first: a drill killed from here on leaves a visible trace
                    await self._mark_bfd(inv, original_bfd, bfd)
                    await set_bfd(self.d, inv, bfd)
                    current_bfd = bfd
                    baseline = await wait_healthy(self.d, 20)
                    if baseline is None:
                        raise EcmpError("sessions did not come back after changing BFD")
                if isinstance(sc, RouterScenario):
                    results.append(await self._router_one(sc, current_bfd, inv, baseline))
                elif isinstance(sc, MembershipScenario):
                    results.append(await self._membership(sc, current_bfd, inv, target, baseline))
                elif isinstance(sc, Scenario) and sc.action.health_catches and has_health:
                    # the contrast: the node's own check withdraws it; without it nobody does
                    results.append(
                        await self._one(sc, current_bfd, inv, target, baseline, health=True)
                    )
                    results.append(
                        await self._one(sc, current_bfd, inv, target, baseline, health=False)
                    )
                else:
                    results.append(
                        await self._one(
                            sc, current_bfd, inv, target, baseline, health=has_health or None
                        )
                    )
        finally:
            if self._pending is not None:  # interrupted (Ctrl-C, SIGTERM, an error) mid-way
                what, undo = self._pending
                self._pending = None
                self.on_event(f"interrupted: {what}")
                await undo()
            if current_bfd != original_bfd:
                self.on_event(f"BFD back {'on' if original_bfd else 'off'}")
                await set_bfd(self.d, inv, original_bfd)
                await wait_healthy(self.d, 20)
                await self._mark_bfd(inv, original_bfd, original_bfd)
            if self._fib is not None:
                await self._fib.stop()
        return results

    async def _as_before(
        self, baseline: DeploymentStatus, notes: list[str], timeout: float
    ) -> bool:
        """Whether status came back to the baseline (bounded wait); notes it if not."""
        if (
            await wait_status(self.d, lambda st: health_key(st) == health_key(baseline), timeout)
            is not None
        ):
            return True
        now = health_key(await gather(self.d))
        was = health_key(baseline)
        fields = ("BGP", "exported", "withdrawn", "EIP on lo", "health")
        diffs = [
            f"{a[0]} {f} {x!r} -> {y!r}"
            for a, b in zip(was[0], now[0], strict=False)
            if a[0] == b[0]
            for f, x, y in zip(fields, a[1:], b[1:], strict=True)
            if x != y
        ]
        if was[1] != now[1]:
            diffs.append(f"fabric next hops {list(was[1] or [])} -> {list(now[1] or [])}")
        notes.append(
            "status differs from before the scenario: "
            + ("; ".join(diffs) or "the set of nodes changed")
        )
        return False

    def _result(
        self,
        name: str,
        bfd: bool,
        health: bool | None,
        node: str,
        fo: Failover,
        recovery: float | None,
        recovered: bool,
        stream: ProbeStream,
        notes: list[str],
        t_action: float,
        last_answer: bool = True,
        t_restore: float | None = None,
    ) -> ScenarioResult:
        fib_ms = self._fib_ms(t_action)
        marks = [Mark(0.0, f"{name} {node}")]
        if t_restore is not None:
            marks.append(Mark(t_restore - t_action, "restore", "restore"))
        if fib_ms is not None:
            marks.append(Mark(fib_ms / 1000, "FIB", "fib"))
        return ScenarioResult(
            name,
            bfd,
            health,
            node,
            fo.convergence_ms,
            fo.last_affected_ms if last_answer else None,
            recovery,
            fo.failed,
            fo.before,
            fo.after,
            recovered=recovered,
            requests=len(stream.samples),
            notes=notes,
            fib_ms=fib_ms,
            family=(self.family or Family.IPV4).value,
            daemon=self._daemons.get(node),
            chart=series.from_samples(stream.samples, t_action, marks=marks),
        )

    def _fib_ms(self, t_action: float) -> float | None:
        """Lab: ms from the action to the fabric's first FIB change for the EIP."""
        return self._fib.first_change_after(t_action) if self._fib is not None else None

    async def _router_one(
        self, sc: RouterScenario, bfd: bool, inv: Inventory, baseline: DeploymentStatus
    ) -> ScenarioResult:
        """Break a core router for ROUTER_WATCH_S, restore it, measure what failed."""
        from ecmptui.deployment import operate

        label = f"{sc.name}{' (BFD)' if bfd else ''}"
        self.on_event(f"{label}: probing at {self.rate:.0f} req/s")
        url, netns = self.d.probe_target(inv, self.family)
        stream = self._stream(url, netns)
        notes: list[str] = []
        await stream.start()
        try:
            await asyncio.sleep(self._baseline_s())  # normal traffic (and flows open)
            t_action = time.monotonic()
            self._pending = (
                f"restore {sc.router}",
                lambda: operate.perform_router(self.d, sc.router, "restore"),
            )
            await operate.perform_router(self.d, sc.router, sc.fault)
            self.on_event(f"{label}: {sc.fault} on {sc.router}")
            await asyncio.sleep(ROUTER_WATCH_S)
            t_restore = time.monotonic()
            await operate.perform_router(self.d, sc.router, "restore")
            self._pending = None
            self.on_event(f"{label}: restored {sc.router}")
            await asyncio.sleep(self.settle_s + self.timeout)
        finally:
            await stream.stop()
        as_before = await self._as_before(baseline, notes, 20)
        fo = analyse(stream.samples, t_action, "", until=t_restore)
        spread = {n.name for n in inv.nodes} <= set(fo.after)
        if not spread:
            notes.append(
                f"traffic not spread over every node while {sc.router} was down: {fo.after}"
            )
        result = self._result(
            sc.name,
            bfd,
            None,
            sc.router,
            fo,
            None,
            as_before and spread,
            stream,
            notes,
            t_action,
            last_answer=False,
            t_restore=t_restore,
        )
        result.flows = self._flows(stream, t_action, t_restore, sc.router)
        self.on_event(
            f"{label}: failed {sum(result.failed.values())}, traffic on "
            f"{', '.join(sorted(fo.after)) or 'nobody'}, recovered {result.recovered}"
        )
        return result

    async def _undo_node(self, sc: Scenario, target: NodeRecord) -> None:
        async with self.d.node(target) as node:
            await sc.restore(node)

    async def _mark_bfd(self, inv: Inventory, original: bool, now: bool) -> None:
        """The drill's BFD marker on every node while BFD differs from `original`."""
        marker = "drill-bfd-off" if original else "drill-bfd-on"

        async def one(rec: NodeRecord) -> None:
            async with self.d.node(rec) as node:
                await (
                    faults.mark(node, marker) if now != original else faults.unmark(node, marker)
                )

        await asyncio.gather(*(one(r) for r in inv.nodes))

    async def _bfd_now(self, rec: NodeRecord) -> bool:
        async with self.d.node(rec) as node:
            return node.daemon.bfd_on(await node.read(node.daemon.conf_path) or "")

    async def _one(
        self,
        sc: Scenario,
        bfd: bool,
        inv: Inventory,
        target: NodeRecord,
        baseline: DeploymentStatus,
        health: bool | None,
    ) -> ScenarioResult:
        label = f"{sc.name}{' (BFD)' if bfd else ''}" + (
            "" if health is None else f" (health {'on' if health else 'off'})"
        )
        self.on_event(f"{label}: probing at {self.rate:.0f} req/s")
        url, netns = self.d.probe_target(inv, self.family)
        stream = self._stream(url, netns)
        notes: list[str] = []
        await stream.start()
        paused_health = False
        try:
            async with self.d.node(target) as node:
                if health is False and await node_health.health_running(node):
                    await node_health.stop_health(node)
                    paused_health = True
                await asyncio.sleep(self._baseline_s())  # normal traffic (and flows open)
                t_action = time.monotonic()
                if sc.via_api:
                    return await self._reboot(sc, label, target, stream, t_action, baseline)
                self._pending = (f"restore {target.name}", lambda: self._undo_node(sc, target))
                await sc.act(node)
                self.on_event(f"{label}: acted on {target.name}")
                deadline = t_action + self.limit_s + self.timeout
                while time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                    now = time.monotonic()
                    if now - t_action > self.settle_s + self.timeout and steady_since(
                        stream.samples, now, self.settle_s, target.name, self.timeout
                    ):
                        break
                else:
                    notes.append(f"traffic not steady within {self.limit_s:.0f} s")
                t_restore = time.monotonic()
                await sc.restore(node)
                self._pending = None
                if paused_health:
                    await node_health.start_health(node)
                    paused_health = False
                self.on_event(f"{label}: restored {target.name}")
                deadline = t_restore + 15
                while first_answer_ms(stream.samples, t_restore, target.name) is None:
                    if time.monotonic() > deadline:
                        notes.append("the node did not answer again within 15 s")
                        break
                    await asyncio.sleep(0.05)
        finally:
            await stream.stop()
            if paused_health:  # an error mid-scenario: never leave the check off
                async with self.d.node(target) as node:
                    await node_health.start_health(node)
        as_before = await self._as_before(baseline, notes, 15)
        fo = analyse(stream.samples, t_action, target.name, until=t_restore)
        recovery = first_answer_ms(stream.samples, t_restore, target.name)
        result = self._result(
            sc.name,
            bfd,
            health,
            target.name,
            fo,
            recovery,
            recovery is not None and as_before,
            stream,
            notes,
            t_action,
            t_restore=t_restore,
        )
        result.flows = self._flows(stream, t_action, t_restore, target.name)
        self.on_event(
            f"{label}: convergence {fmt_ms(result.convergence_ms)}, failed "
            f"{sum(result.failed.values())}, recovered {result.recovered}"
            + flows_text(result.flows)
        )
        return result

    # -- long-lived flows ------------------------------------------------------------------
    def _stream(self, url: str, netns: str | None, flows: int | None = None) -> ProbeStream:
        return ProbeStream(
            url,
            self.rate,
            self.timeout,
            netns,
            flows=self.flows if flows is None else flows,
            flow_interval=self.flow_interval,
        )

    def _baseline_s(self, flows: int | None = None) -> float:
        """Normal traffic before the action; with flows, long enough for all to open."""
        return 1.0 if not (self.flows if flows is None else flows) else 1.0 + 2 * self.flow_interval

    def _flows(self, stream: ProbeStream, t0: float, t1: float, node: str) -> JsonObject | None:
        if "--flows" not in stream.argv:
            return None
        open_flows = len(flows_on(stream.flow_events, t0))
        return disruption(stream.flow_events, t0, t1, node, open_flows)

    async def _membership(
        self,
        sc: MembershipScenario,
        bfd: bool,
        inv: Inventory,
        target: NodeRecord,
        baseline: DeploymentStatus,
    ) -> ScenarioResult:
        """remove-node: withdraw the node and count the flows that broke, on it and on the
        others. add-node: withdraw it first (not measured), wait until it is out of the
        routing, and only then open the flows, so that every flow was opened on the smaller
        pool as on one about to grow (flows that had survived the withdraw sit where the
        two layouts agree and could never break); then announce it and count what broke."""
        label = f"{sc.name} ({len(inv.nodes)} nodes)"
        flows = self.flows or MEMBERSHIP_FLOWS
        url, netns = self.d.probe_target(inv, self.family)
        stream = self._stream(url, netns, flows)
        notes: list[str] = []
        withdraw, announce = ACTIONS["withdraw"], ACTIONS["announce"]
        async with self.d.node(target) as node:
            self._pending = (
                f"announce {target.name}",
                lambda: self._undo_node(Scenario(withdraw, announce), target),
            )
            if sc.name == "add-node":
                await operate.on_node(node, withdraw)
                self.on_event(f"{label}: withdrew {target.name} first")
                await self._out_of_routing(inv, target)
            self.on_event(f"{label}: probing at {self.rate:.0f} req/s with {flows} flows")
            await stream.start()
            try:
                await asyncio.sleep(self._baseline_s(flows))
                t_action = time.monotonic()
                if sc.name == "add-node":
                    await operate.on_node(node, announce)
                    self._pending = None
                    self.on_event(f"{label}: announced {target.name}")
                    await asyncio.sleep(FLOW_SETTLE_S)
                    t_end = time.monotonic()
                else:
                    await operate.on_node(node, withdraw)
                    self.on_event(f"{label}: withdrew {target.name}")
                    await asyncio.sleep(FLOW_SETTLE_S)
                    t_end = time.monotonic()
                    await operate.on_node(node, announce)
                    self._pending = None
                    await asyncio.sleep(self.settle_s)
            finally:
                await stream.stop()
        as_before = await self._as_before(baseline, notes, 15)
        fo = analyse(
            stream.samples, t_action, target.name if sc.name == "remove-node" else "", until=t_end
        )
        result = self._result(
            sc.name,
            bfd,
            None,
            target.name,
            fo,
            None,
            as_before,
            stream,
            notes,
            t_action,
            last_answer=False,
        )
        result.flows = self._flows(stream, t_action, t_end, target.name)
        self.on_event(f"{label}: failed {sum(result.failed.values())}" + flows_text(result.flows))
        return result

    async def _out_of_routing(self, inv: Inventory, target: NodeRecord) -> None:
        """After a withdraw: until the router forwards nothing to `target` (lab: the fabric's
        next hops; elsewhere, where the router cannot be seen, a fixed settle time)."""
        family = self.family or Family.IPV4
        eip = inv.eips.get(family)
        gateway = target.next_hop_for(family)
        if not (
            eip and gateway and await wait_fabric_drops(self.d, eip, gateway, FLOW_SETTLE_S * 3)
        ):
            await asyncio.sleep(FLOW_SETTLE_S)

    async def _reboot(
        self,
        sc: Scenario,
        label: str,
        target: NodeRecord,
        stream: ProbeStream,
        t_action: float,
        baseline: DeploymentStatus,
    ) -> ScenarioResult:
        """Reboot through the API, wait until the node is back by itself, measure."""
        notes: list[str] = []
        if not isinstance(self.d, ApiDeployment):
            raise EcmpError("reboot goes through the provider API: this target has none")
        await self.d.client.acall(self.d.client.reboot_device, target.device_id)
        self.on_event(f"{label}: reboot requested for {target.name}")
        try:
            await self.d.wait_back(target, t_action + REBOOT_TIMEOUT)
        except EcmpError as exc:
            notes.append(str(exc))
        deadline = time.monotonic() + 15
        while (
            back_after_ms(stream.samples, t_action, target.name) is None
            or first_answer_ms(stream.samples, time.monotonic() - 0.5, target.name) is None
        ):
            if time.monotonic() > deadline:
                notes.append("the node did not answer again within 15 s of being back")
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(self.settle_s)
        await stream.stop()
        as_before = await self._as_before(baseline, notes, 15)
        back = back_after_ms(stream.samples, t_action, target.name)
        until = t_action + back / 1000 if back is not None else None
        fo = analyse(stream.samples, t_action, target.name, until=until)
        result = self._result(
            sc.name,
            False,
            None,
            target.name,
            fo,
            back,
            back is not None and as_before,
            stream,
            notes,
            t_action,
        )
        self.on_event(
            f"{label}: failed {sum(result.failed.values())}, answering again after "
            f"{fmt_ms(back)}, recovered {result.recovered}"
        )
        return result


def flows_text(f: JsonObject | None) -> str:
    """A scenario's flow disruption in a few words (empty without flows)."""
    if not f:
        return ""
    return (
        f"; flows: {f['affected']} of {f['on_node']} on the node broke, "
        f"{f['bystanders']} of {f['flows'] - f['on_node']} on the others (bystanders), "
        f"{f['moved']} came back elsewhere"
    )


def fib_label(v: float | None, visible: bool = True) -> str:
    """A FIB change as the report says it: +2.4 ms, unchanged, or n/a where no router's
    FIB can be seen (off the lab)."""
    if not visible:
        return "n/a"
    return "unchanged" if v is None else f"+{v:.1f} ms"


def fmt_ms(v: float | None) -> str:
    return "not steady" if v is None else f"{v:.0f} ms"


def scenario_label(r: ScenarioResult, dual: bool) -> str:
    """A scenario's name in a report; with results of both families, which one it probed."""
    return f"{r.name} (IPv{r.family})" if dual else r.name


def node_label(r: ScenarioResult) -> str:
    """The node acted on, with its routing daemon when known: `ecmp-node2 (FRR)`."""
    return f"{r.node} ({DAEMON_LABELS.get(r.daemon, r.daemon)})" if r.daemon else r.node


def report_markdown(results: list[ScenarioResult], rate: float, target: str) -> str:
    families = sorted({r.family for r in results})
    dual = len(families) > 1
    probed = " and ".join(f"IPv{f}" for f in families) or "-"
    lines = [
        "# ecmptui drill report",
        "",
        f"Target {target}, probing the {probed} EIP at {rate:.0f} requests/s, "
        "a new connection each.",
        "",
        "| scenario | BFD | health check | node | FIB updated | convergence "
        "| last answer from node | failed (refused/reset/timeout) | before | after "
        "| recovery | recovered |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {scenario_label(r, dual)} | {'on' if r.bfd else 'off'} "
            f"| {'-' if r.health is None else ('on' if r.health else 'off')} "
            f"| {node_label(r)} | {fib_label(r.fib_ms, target == 'lab')} "
            f"| {fmt_ms(r.convergence_ms)} "
            f"| {fmt_ms(r.last_answer_ms) if r.last_answer_ms is not None else '-'} "
            f"| {failed_label(r)} | {distribution(r.before)} | {distribution(r.after)}"
            f" | {fmt_ms(r.recovery_ms) if r.recovery_ms is not None else '-'} "
            f"| {'yes' if r.recovered else 'NO'} |"
        )
    with_flows = [r for r in results if r.flows]
    if with_flows:
        lines += [
            "",
            "Long-lived flows (keep-alive connections open when the change came):",
            "",
            "| scenario | node | flows | on the node | broken on the node "
            "| broken elsewhere (bystanders) | share of bystanders broken | came back "
            "elsewhere |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in with_flows:
            f = r.flows or {}
            others = f["flows"] - f["on_node"]
            share = f"{f['bystanders'] / others:.2f}" if others else "-"
            lines.append(
                f"| {scenario_label(r, dual)} | {r.node} | {f['flows']} | {f['on_node']} "
                f"| {f['affected']} | {f['bystanders']} | {share} | {f['moved']} |"
            )
    notes = [
        f"- {scenario_label(r, dual)}{' (BFD)' if r.bfd else ''}"
        f"{'' if r.health is None else ' (health ' + ('on' if r.health else 'off') + ')'}"
        f": {n}"
        for r in results
        for n in r.notes
    ]
    if notes:
        lines += ["", "Notes:", *notes]
    lines += ["", *DEFINITIONS]
    return "\n".join(lines) + "\n"


DEFINITIONS = (
    "FIB updated (lab): from the action to the fabric's first change of its "
    "route for the EIP (`ip monitor route`; unchanged: no change within 10 s; n/a: "
    "the router's FIB cannot be seen from here).",
    "convergence: from the action to the last request that failed or still "
    "reached the node; recovery: from the restore to the node's first answer "
    "(reboot: from the reboot request to its first answer after it was down).",
)


def failed_label(r: ScenarioResult) -> str:
    """Failed requests as refused/reset/timeout (the report's column)."""
    f = r.to_json()["failed"]
    return f"{f['refused']}/{f['reset']}/{f['timeout']}"


def distribution(d: dict[str, int]) -> str:
    """Answers by backend: `node1 120, node2 118`, or - for none."""
    return ", ".join(f"{k} {v}" for k, v in sorted(d.items())) or "-"
