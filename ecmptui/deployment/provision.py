"""The guide's configuration section as an idempotent async pipeline of visible steps.

(1) SSH key registered, (2) N devices active, (3) an EIP reserved (tagged), (4) Local BGP
enabled, (5) a BGP session per device, (6) every node configured over SSH in parallel (its
routing daemon, EIP on lo, nginx), (7) verified: sessions Established and the EIP exported.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ecmptui.deployment.inventory import (
    ApiDeployment,
    Inventory,
    NodeRecord,
    public_key_line,
    record_from_device,
)
from ecmptui.deployment.metal import DeviceInfo, IpInfo
from ecmptui.deployment.port import Deployment
from ecmptui.deployment.steps import KEY_LABEL, STEPS, StepEvent, StepState
from ecmptui.errors import EcmpError
from ecmptui.family import Family, parse_families
from ecmptui.jsonish import JsonObject
from ecmptui.node import bird
from ecmptui.node.daemon_names import daemon_of_node, parse_daemons
from ecmptui.node.health import apply_health
from ecmptui.node.server import PACKAGES, Node
from ecmptui.node.verified import node_verified
from ecmptui.waits import Deadline

# the service end to end (the composition root passes traffic's check): (ok, what was seen)
EndToEnd = Callable[[], Awaitable[tuple[bool, str]]]


class Provisioner:
    """Runs the steps; iterate `run()` for events, then read `inventory` and `changed`."""

    def __init__(
        self,
        deployment: ApiDeployment,
        *,
        nodes: int | None = None,
        bfd: bool | None = None,
        end_to_end: EndToEnd | None = None,
    ) -> None:
        self.d = deployment
        self.p = deployment.settings.provision
        self.nodes = nodes or self.p.nodes
        self.bfd = self.p.bfd if bfd is None else bfd
        # asked for; a family the deployment already serves is kept (see _eip)
        self.families = parse_families(self.p.family or deployment.target.default_families)
        self.health = health_config(deployment)
        # each node's routing daemon, taken in turn; () keeps the one each node runs
        self.daemons = parse_daemons(self.p.daemon) if self.p.daemon else ()
        self.inventory: Inventory | None = None
        self.changed = False
        self.timing = deployment.target.timing
        self.end_to_end = end_to_end

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await self.d.client.acall(fn, *args, **kwargs)

    async def run(self) -> AsyncIterator[StepEvent]:
        steps = [self._ssh_key, self._devices, self._eip, self._bgp, self._sessions]
        state: JsonObject = {"nodes": {}}
        # what the API cannot change is checked before anything is created
        self._check_bgp(await self._call(self.d.client.bgp_config))
        try:
            # STEPS also names configure and verify, which run per node below
            for (name, _), step in zip(STEPS, steps, strict=False):
                yield StepEvent(name, StepState.RUNNING)
                try:
                    detail, changed = await step(state)
                except EcmpError as exc:
                    yield StepEvent(name, StepState.FAILED, str(exc))
                    raise
                self.changed |= changed
                yield StepEvent(name, StepState.DONE, detail, changed=changed)
            async for ev in self._configure(state):
                yield ev
            async for ev in self._verify(state):
                yield ev
            if self.end_to_end is not None:
                async for ev in self._service():
                    yield ev
        finally:  # the SSH connections opened by configure, reused by verify
            await asyncio.gather(
                *(n.close() for n in state["nodes"].values()), return_exceptions=True
            )
        eips: dict[Family, IpInfo] = state["eips"]
        v4, v6 = eips.get(Family.IPV4), eips.get(Family.IPV6)
        self.inventory = Inventory(
            self.d.target.kind.value,
            v4.address if v4 else None,
            v4.id if v4 else None,
            state["records"],
            v6.address if v6 else None,
            v6.id if v6 else None,
        )

    # -- steps ---------------------------------------------------------------------------
    async def _ssh_key(self, state: JsonObject) -> tuple[str, bool]:
        await self._call(self.d.client.check_project)
        pub = public_key_line(self.d.settings.ssh_key_path)
        for k in await self._call(self.d.client.project_keys):
            if " ".join(k["key"].split()[:2]) == pub:
                state["key_id"] = k["id"]
                return f"already registered ({k.get('label') or k['id']})", False
        state["key_id"] = await self._call(self.d.client.add_project_key, KEY_LABEL, pub)
        return f"registered as {KEY_LABEL!r}", True

    async def _devices(self, state: JsonObject) -> tuple[str, bool]:
        prefix = self.p.hostname_prefix
        existing = {d.hostname: d for d in await self._call(self.d.client.devices, self.p.tag)}
        names = [f"{prefix}{i}" for i in range(1, self.nodes + 1)]
        created: list[str] = []
        replaced: dict[str, str] = {}  # name -> why the device it had failed
        for name in names:
            dev = existing.get(name)
            if dev is not None and dev.state == "failed":
                # a machine that never came up: replaced, the healthy ones left alone
                replaced[name] = await self._replace(dev)
                dev = None
            if dev is None:
                existing[name] = await self._create(name, state)
                created.append(name)
        devices = await self._wait_active([existing[n] for n in names], state, replaced)
        state["records"] = [record_from_device(d, prefix) for d in devices]
        extra = sorted(set(existing) - {d.hostname for d in devices})
        fresh = [n for n in created if n not in replaced]
        detail = (
            (f"created {', '.join(fresh)}; " if fresh else "")
            + (
                "replaced " + "; ".join(f"{n} ({why})" for n, why in replaced.items()) + "; "
                if replaced
                else ""
            )
            + f"{len(devices)} active"
            + (f" (also tagged, left alone: {', '.join(extra)})" if extra else "")
        )
        return detail, bool(created)

    async def _create(self, name: str, state: JsonObject) -> DeviceInfo:
        return await self._call(
            self.d.client.create_device,
            name,
            self.p.plan,
            self.p.metro,
            self.p.operating_system,
            [self.p.tag],
            [state["key_id"]],
        )

    async def _replace(self, dev: DeviceInfo) -> str:
        """Delete a failed device (and forget its host key); returns why it failed."""
        why = await self._call(self.d.client.device_failure, dev.id)
        await self._call(self.d.client.delete_device, dev.id)
        if dev.public_ipv4:
            self.d.forget_host(dev.public_ipv4)
        return f"failed: {why}"

    async def _wait_active(
        self, wanted: list[DeviceInfo], state: JsonObject, replaced: dict[str, str]
    ) -> list[DeviceInfo]:
        """Every device active, polled together; one that fails while we wait is replaced
        once; every one that still fails or times out is named with its reason."""
        deadlines = {d.hostname: Deadline(self.timing.active_timeout) for d in wanted}
        current = {d.hostname: d for d in wanted}
        retried: set[str] = set()
        problems: dict[str, str] = {}
        while True:
            pending = [n for n, d in current.items() if d.state != "active" and n not in problems]
            if not pending:
                break
            for name in pending:
                dev = current[name]
                if dev.state == "failed":
                    if name in retried:
                        why = await self._call(self.d.client.device_failure, dev.id)
                        problems[name] = f"failed again ({why})"
                        continue
                    retried.add(name)
                    replaced[name] = await self._replace(dev)
                    current[name] = await self._create(name, state)
                    deadlines[name] = Deadline(self.timing.active_timeout)
                elif deadlines[name].expired():
                    problems[name] = (
                        f"not active after {deadlines[name].elapsed():.0f} s (state {dev.state})"
                    )
            await asyncio.sleep(self.timing.poll)
            for name in [n for n in pending if n not in problems]:
                current[name] = await self._call(self.d.client.device, current[name].id)
        if problems:
            raise EcmpError(
                f"{len(problems)} device(s) did not come up: "
                + "; ".join(f"{n}: {why}" for n, why in problems.items())
                + " (the next `provision` replaces a failed device)"
            )
        return [current[d.hostname] for d in wanted]

    async def _eip(self, state: JsonObject) -> tuple[str, bool]:
        """An EIP per family asked for, and per family the deployment already has (a
        deployment remembers its families: a rerun never drops one)."""
        eips: dict[Family, IpInfo] = {}
        said: list[str] = []
        changed = False
        for family in Family:
            wanted = family in self.families
            if family is Family.IPV4 and self.p.eip:
                found = [i for i in await self._call(self.d.client.ips) if i.address == self.p.eip]
                if not found:
                    raise EcmpError(f"EIP {self.p.eip} is not reserved in this project")
                eips[family] = found[0]
                said.append(f"{self.p.eip} (configured)")
                continue
            tagged = await self._call(self.d.client.ips, self.p.tag, family)
            if tagged:
                eips[family] = tagged[0]
                said.append(f"{tagged[0].address} (already reserved)")
            elif wanted:
                eips[family] = await self._call(
                    self.d.client.reserve_ip, self.p.metro, [self.p.tag], family
                )
                said.append(f"{eips[family].address} reserved")
                changed = True
        state["eips"] = eips
        self.families = tuple(eips)
        return ", ".join(said), changed

    def _check_bgp(self, cfg: JsonObject) -> None:
        """Local BGP already enabled with another ASN or MD5 password: refuse (the API has
        no way to change either, and nodes with other values would never peer)."""
        if cfg.get("status") == "enabled":
            if int(cfg.get("asn", 0)) != self.p.asn:
                raise EcmpError(
                    f"Local BGP is enabled with AS {cfg.get('asn')}, not the "
                    f"configured {self.p.asn}"
                )
            if not same_md5(cfg.get("md5"), self.p.md5 or None):
                # the API offers no way to change it, and a node with another password
                # would never bring its sessions up: refuse rather than half-apply
                raise EcmpError(
                    "Local BGP is enabled with "
                    + ("an MD5 password" if cfg.get("md5") else "no MD5 password")
                    + ", not "
                    + ("the configured one" if self.p.md5 else "none as configured")
                    + ": the API cannot change it; use the password BGP was enabled with"
                )

    async def _bgp(self, state: JsonObject) -> tuple[str, bool]:
        cfg = await self._call(self.d.client.bgp_config)
        if cfg.get("status") == "enabled":
            self._check_bgp(cfg)
            return f"already enabled (AS {cfg['asn']})", False
        await self._call(self.d.client.enable_bgp, self.p.asn, self.p.md5 or None)
        return f"enabled (AS {self.p.asn}{', MD5' if self.p.md5 else ''})", True

    async def _sessions(self, state: JsonObject) -> tuple[str, bool]:
        created = 0
        for rec in state["records"]:
            sessions = await self._call(self.d.client.sessions, rec.device_id)
            for family in self.families:
                if not any(s.get("address_family") == family.api for s in sessions):
                    await self._call(self.d.client.create_session, rec.device_id, family)
                    created += 1
        n = len(state["records"]) * len(self.families)
        return (
            f"{created} created, {n - created} existing" if created else f"{n} existing"
        ), created > 0

    async def _service(self) -> AsyncIterator[StepEvent]:
        """Until the service answers end to end (bounded; longer under load)."""
        assert self.end_to_end is not None
        yield StepEvent("service", StepState.RUNNING)
        deadline = Deadline(self.timing.verify_timeout)
        ok, seen = await self.end_to_end()
        while not ok and not deadline.expired():
            await asyncio.sleep(0.5)
            ok, seen = await self.end_to_end()
        if not ok:
            yield StepEvent("service", StepState.FAILED, seen)
            raise EcmpError(
                f"the nodes announce, but the service does not answer end to end: {seen}"
            )
        yield StepEvent("service", StepState.DONE, seen)

    # -- per node ------------------------------------------------------------------------
    async def _configure(self, state: JsonObject) -> AsyncIterator[StepEvent]:
        yield StepEvent("configure", StepState.RUNNING)
        queue: asyncio.Queue[StepEvent] = asyncio.Queue()
        eips = {f: ip.address for f, ip in state["eips"].items()}

        async def one(rec: NodeRecord) -> bool:
            await queue.put(StepEvent("configure", StepState.RUNNING, "connecting", rec.name))
            try:
                parts = await bgp_parts(self.d, rec, eips)
                rec.peers = [p for part in parts for p in part.neighbor.peer_ips]
                node = state["nodes"][rec.name] = await self.d.connect(rec)
                daemon = daemon_of_node(self.daemons, rec.index) if self.daemons else None
                changes = await configure_node(
                    node, parts, router_id(rec, parts), self.bfd, self.health, daemon
                )
            except EcmpError as exc:
                await queue.put(StepEvent("configure", StepState.FAILED, str(exc), rec.name))
                raise
            await queue.put(
                StepEvent(
                    "configure",
                    StepState.DONE,
                    ", ".join(changes) if changes else "no change",
                    rec.name,
                    changed=bool(changes),
                )
            )
            return bool(changes)

        tasks = [asyncio.create_task(one(r)) for r in state["records"]]
        gathered = asyncio.gather(*tasks, return_exceptions=True)
        while not gathered.done() or not queue.empty():
            try:
                yield await asyncio.wait_for(queue.get(), 0.1)
            except TimeoutError:
                pass
        outcomes = gathered.result()
        errors = [r for r in outcomes if isinstance(r, BaseException)]
        results = [r for r in outcomes if isinstance(r, bool)]
        if errors:
            yield StepEvent("configure", StepState.FAILED, f"{len(errors)} node(s) failed")
            err = errors[0]
            raise err if isinstance(err, EcmpError) else EcmpError(str(err))
        changed = any(results)
        self.changed |= changed
        yield StepEvent(
            "configure",
            StepState.DONE,
            f"{sum(results)} changed, {len(results) - sum(results)} unchanged",
            changed=changed,
        )

    async def _verify(self, state: JsonObject) -> AsyncIterator[StepEvent]:
        yield StepEvent("verify", StepState.RUNNING)
        deadline = Deadline(self.timing.verify_timeout)
        pending = {r.name: r for r in state["records"]}
        last: dict[str, str] = {}
        while pending and not deadline.expired():
            for name in list(pending):
                ok, why = await node_verified(state["nodes"][name])
                if ok:
                    del pending[name]
                    yield StepEvent("verify", StepState.DONE, why, name)
                else:
                    last[name] = why
            if pending:
                await asyncio.sleep(0.2)
        if pending:
            detail = "; ".join(f"{n}: {last.get(n, 'unknown')}" for n in pending)
            yield StepEvent("verify", StepState.FAILED, detail)
            raise EcmpError(f"verification failed: {detail}")
        yield StepEvent("verify", StepState.DONE, f"{len(state['records'])} node(s) announcing")


def same_md5(enabled_with: str | None, configured: str | None) -> bool:
    """Whether the API's MD5 (plain, or base64 as Metal's responses showed it) is the one
    configured. Neither value is ever printed."""
    import base64

    if not enabled_with or not configured:
        return not enabled_with and not configured
    encoded = base64.b64encode(configured.encode()).decode()
    return enabled_with in (configured, encoded, encoded.rstrip("="))


def health_config(d: Deployment) -> JsonObject | None:
    """The node checker's settings, or None when health checks are off."""
    h = d.settings.health
    return h.node_config() if h.enabled else None


async def bgp_parts(
    d: Deployment, rec: NodeRecord, eips: dict[Family, str]
) -> list[bird.FamilyBgp]:
    """What a node announces per family: the EIP, the API's neighbor record of that family
    and the gateway its peers are routed through."""
    client = d.client
    if client is None:
        raise EcmpError("the BGP neighbors come from the API: this target has no API")
    if not eips:
        raise EcmpError("nothing provisioned: no EIP")
    neighbors = bird.by_family(await client.acall(client.neighbors, rec.device_id))
    parts = []
    for family, eip in sorted(eips.items()):
        nb = neighbors.get(family)
        if nb is None:
            raise EcmpError(f"{rec.name}: the API lists no {family.api} BGP neighbor")
        parts.append(bird.FamilyBgp(eip, nb, rec.gateway_for(family) if nb.multihop else None))
    return parts


def router_id(rec: NodeRecord, parts: list[bird.FamilyBgp]) -> str:
    """The BGP router id: the node's IPv4 BGP address, or its private/mgmt IPv4 address on an
    IPv6-only deployment (a router id is always an IPv4-shaped number)."""
    v4 = [p.neighbor.customer_ip for p in parts if p.family is Family.IPV4]
    return v4[0] if v4 else rec.private_address or rec.mgmt_address


async def configure_node(
    node: Node,
    parts: list[bird.FamilyBgp],
    router_id: str,
    bfd: bool,
    health: JsonObject | None = None,
    daemon: str | None = None,
) -> list[str]:
    """Make one node announce its EIP of every family in `parts` with `daemon` (None: the
    one it runs); returns what changed (empty: nothing). Metal's multihop peers are reached
    through each family's gateway, so the rendered config routes their host routes there.
    A node switching daemons has the new config validated before the old daemon stops."""
    changes = []
    eips = [p.eip for p in parts]
    before = node.daemon
    after = node.use_daemon(daemon) if daemon and daemon != before.name else before
    installed = await node.install_packages({**after.programs, "nginx": PACKAGES["nginx"]})
    if installed:
        changes.append("installed " + ", ".join(installed))
    if await node.ensure_eip(eips):
        changes.append("EIP on lo" if len(eips) == 1 else "EIPs on lo")
    if await node.apply_nginx(eips):
        changes.append("nginx")
    spec = bird.NodeBgpSpec(
        router_id=router_id,
        families=tuple(parts),
        bfd=bfd,
        announce=not await node.withdrawn(),
        withdrawn_families=frozenset(await node.withdrawn_families()),
        log_file=None,
    )
    text = after.render(spec, node.name)
    if after is not before:
        await after.check(node, text)  # nothing stops before the new config is known good
        if await node.unit_active(before.unit):  # a fresh server runs neither
            await before.stop(node)
            changes.append(f"{before.label} stopped")
    if await after.apply(node, text):
        changes.append(after.label)
    if await node.read(node.layout.daemon_file) != after.name + "\n":
        await node.write(node.layout.daemon_file, after.name + "\n")
    if await apply_health(node, health, eips):
        changes.append("health check" if health else "health check removed")
    return changes


async def deprovision(d: ApiDeployment) -> AsyncIterator[StepEvent]:
    """Remove what provision made: devices, the EIP and ecmptui's SSH key."""
    p = d.settings.provision
    inv = await d.ainventory()
    yield StepEvent("devices", StepState.RUNNING)
    for rec in inv.nodes:
        await d.client.acall(d.client.delete_device, rec.device_id)
        d.forget_host(rec.mgmt_address)  # a new server may get its address
        yield StepEvent("devices", StepState.DONE, "deleted", rec.name, changed=True)
    yield StepEvent("devices", StepState.DONE, f"{len(inv.nodes)} deleted", changed=bool(inv.nodes))
    yield StepEvent("eip", StepState.RUNNING)
    tagged = []
    for family in Family:  # a configured (not reserved) IPv4 EIP is not ecmptui's to release
        if family is not Family.IPV4 or not p.eip:
            tagged += await d.client.acall(d.client.ips, p.tag, family)
    for ip in tagged:
        await d.client.acall(d.client.delete_ip, ip.id)
    yield StepEvent(
        "eip",
        StepState.DONE,
        ", ".join(i.address for i in tagged) + " released"
        if tagged
        else "none reserved by ecmptui",
        changed=bool(tagged),
    )
    yield StepEvent("ssh-key", StepState.RUNNING)
    pub = public_key_line(d.settings.ssh_key_path)
    keys = [
        k
        for k in await d.client.acall(d.client.project_keys)
        if " ".join(k["key"].split()[:2]) == pub
    ]
    for k in keys:
        await d.client.acall(d.client.delete_key, k["id"])
    yield StepEvent(
        "ssh-key", StepState.DONE, "removed" if keys else "not registered", changed=bool(keys)
    )
    d.forget_inventory()  # nothing left for SSH-only actions to fall back on
    yield StepEvent(
        "bgp", StepState.DONE, "Local BGP stays enabled (the API has no way to disable it)"
    )


async def set_bfd(
    d: Deployment, inv: Inventory, bfd: bool, only: list[NodeRecord] | None = None
) -> None:
    """Re-render every node's (or `only` those) routing config with BFD on or off (validated,
    then reloaded). The config comes from the API's neighbor data: a target with an API."""
    client = d.client
    if client is None:
        raise EcmpError("BFD is set from the API's neighbor data: this target has no API")

    async def one(rec: NodeRecord) -> None:
        parts = await bgp_parts(d, rec, inv.eips)
        async with d.node(rec) as node:
            await configure_node(node, parts, router_id(rec, parts), bfd, health_config(d))

    await asyncio.gather(*(one(r) for r in (inv.nodes if only is None else only)))
