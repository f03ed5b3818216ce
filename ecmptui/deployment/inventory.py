"""What is provisioned now: the EIP and the nodes, found through the API by their tag."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import asyncssh

from ecmptui.config import Settings
from ecmptui.deployment.metal import ApiEndpoint, DeviceInfo, MetalClient
from ecmptui.deployment.port import Target, Timing
from ecmptui.deployment.records import Inventory, NodeRecord
from ecmptui.errors import EcmpError
from ecmptui.family import Family, url_host
from ecmptui.node.server import HostKeyPolicy, Layout, Node, forget_pinned
from ecmptui.waits import scaled

if TYPE_CHECKING:
    from ecmptui.deployment.port import Deployment


def node_index(hostname: str, prefix: str) -> int | None:
    m = re.fullmatch(re.escape(prefix) + r"(\d+)", hostname)
    return int(m.group(1)) if m else None


def record_from_device(dev: DeviceInfo, prefix: str) -> NodeRecord | None:
    idx = node_index(dev.hostname, prefix)
    if idx is None or not dev.public_ipv4:
        return None
    return NodeRecord(
        dev.hostname,
        idx,
        dev.id,
        dev.public_ipv4,
        dev.private_ipv4,
        dev.private_gateway,
        dev.state,
        public_ipv6=dev.public_ipv6,
        gateway6=dev.gateway6,
    )


REBOOT_GRACE = 20.0


class ApiTarget(Target):
    """A target behind a Metal-compatible API."""

    timing: Timing

    def endpoint(self) -> ApiEndpoint:
        raise NotImplementedError

    def host_key_policy(self, endpoint: ApiEndpoint) -> HostKeyPolicy:
        return HostKeyPolicy("pin", self.settings.known_hosts_path)

    def open(self) -> ApiDeployment:
        return ApiDeployment(self.settings, self)


class NodeAccess:
    """`node(rec)`: an SSH session to one node for the length of a `with` block (the
    deployment classes supply `connect`)."""

    async def connect(self, rec: NodeRecord) -> Node:
        raise NotImplementedError

    @asynccontextmanager
    async def node(self, rec: NodeRecord) -> AsyncIterator[Node]:
        node = await self.connect(rec)
        try:
            yield node
        finally:
            await node.close()


class ApiDeployment(NodeAccess):
    """A deployment behind a Metal-compatible API (lab or Metal): the API client plus the
    settings needed to reach its nodes."""

    def __init__(
        self, settings: Settings, target: ApiTarget, endpoint: ApiEndpoint | None = None
    ) -> None:
        self.settings = settings
        self.target = target
        self.endpoint = endpoint or target.endpoint()
        self.client = MetalClient(self.endpoint)

    def inventory(self) -> Inventory:
        p = self.settings.provision
        nodes = [
            r
            for d in self.client.devices(p.tag)
            if (r := record_from_device(d, p.hostname_prefix)) is not None
        ]
        nodes.sort(key=lambda r: r.index)
        ips = self.client.ips(p.tag)
        if p.eip:
            ips = [i for i in self.client.ips() if i.address == p.eip]
        eip = ips[0] if ips else None
        ips6 = self.client.ips(p.tag, Family.IPV6)
        eip6 = ips6[0] if ips6 else None
        inv = Inventory(
            self.target.kind.value,
            eip.address if eip else None,
            eip.id if eip else None,
            nodes,
            eip6.address if eip6 else None,
            eip6.id if eip6 else None,
        )
        self._save_last(inv)
        return inv

    # -- the last inventory the API gave, for SSH-only actions during an API outage ---------
    def _last_path(self) -> Path:
        import hashlib

        digest = hashlib.sha256(self.target.lock_key().encode()).hexdigest()[:16]
        return self.settings.known_hosts_path.parent / f"inventory-{digest}.json"

    def _save_last(self, inv: Inventory) -> None:
        path = self._last_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = path.with_suffix(".new")
            tmp.write_text(
                json.dumps({**inv.to_json(), "eip_id": inv.eip_id, "saved_at": time.time()})
            )
            tmp.replace(path)
        except OSError:
            pass  # a cache: losing it only loses the fallback

    def forget_inventory(self) -> None:
        self._last_path().unlink(missing_ok=True)

    def last_inventory(self) -> tuple[Inventory, float] | None:
        """The inventory the API last gave (and when), or None."""
        try:
            data = json.loads(self._last_path().read_text())
            nodes = [NodeRecord(**n) for n in data["nodes"]]
            inv = Inventory(
                data["target"], data["eip"], data.get("eip_id"), nodes, data.get("eip6")
            )
            return inv, float(data["saved_at"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def inventory_or_last(self, warn: Callable[[str], None]) -> Inventory:
        """The API's inventory; if the API cannot be reached, the last one it gave (and
        `warn` says so). SSH-only actions keep working through an API outage."""
        from ecmptui.deployment.metal import MetalError

        try:
            return self.inventory()
        except MetalError as exc:
            if exc.status is not None:  # the API answered: no outage, a real refusal
                raise
            last = self.last_inventory()
            if last is None:
                raise
            inv, saved_at = last
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(saved_at))
            warn(f"{exc}; using the inventory it gave at {when}")
            return inv

    async def ainventory(self) -> Inventory:
        return await asyncio.to_thread(self.inventory)

    def probe_target(self, inv: Inventory, family: Family | None = None) -> tuple[str, str | None]:
        """The URL to probe and the namespace to probe from (in the lab, the client
        namespace: the EIP is routed only there)."""
        if not inv.eips:
            raise EcmpError("nothing provisioned yet: no EIP to probe")
        eip = inv.eip_for(family or inv.families[0])
        return f"http://{url_host(eip)}/", self.target.probe_netns()

    # -- device actions ------------------------------------------------------------------
    async def reboot(self, rec: NodeRecord, timeout: float = 90.0) -> float:
        """Reboot the node through the API (Metal's device action) and wait, bounded, until
        it is back by itself: device active, SSH answering, BGP Established. Returns the
        seconds from the request to that point."""
        started = time.monotonic()
        await self.client.acall(self.client.reboot_device, rec.device_id)
        await self.wait_back(rec, started + timeout)
        return time.monotonic() - started

    async def wait_back(self, rec: NodeRecord, deadline: float) -> None:
        """Wait until `rec` went down and came back (or, if it was never seen down, until
        REBOOT_GRACE has passed: a real API may report the reboot late)."""
        from ecmptui.node.verified import node_verified

        started, seen_down, last = time.monotonic(), False, "rebooting"
        while time.monotonic() < deadline:
            dev = await self.client.acall(self.client.device, rec.device_id)
            if dev.state != "active":
                seen_down, last = True, f"device {dev.state}"
            else:
                try:
                    async with self.node(rec) as node:
                        ok, last = await node_verified(node)
                except EcmpError as exc:
                    ok, seen_down, last = False, True, str(exc)
                if ok and (seen_down or time.monotonic() - started > REBOOT_GRACE):
                    return
            await asyncio.sleep(0.2)
        raise EcmpError(
            f"{rec.name}: not back after the reboot within {deadline - started:.0f} s ({last})"
        )

    # -- SSH -----------------------------------------------------------------------------
    def host_key_policy(self) -> HostKeyPolicy:
        return self.target.host_key_policy(self.endpoint)

    def layout(self, rec: NodeRecord) -> Layout:
        return Layout()

    def forget_host(self, address: str) -> None:
        """A deleted server's pinned host key goes with it (a strict file is the API's)."""
        policy = self.host_key_policy()
        if policy.mode == "pin":
            forget_pinned(policy.known_hosts, address)

    async def connect(self, rec: NodeRecord) -> Node:
        return await Node.connect(
            rec.name,
            rec.index,
            rec.mgmt_address,
            self.layout(rec),
            user=self.settings.ssh.user,
            key=ensure_ssh_key(self.settings.ssh_key_path),
            policy=self.host_key_policy(),
            timeout=scaled(self.settings.ssh.connect_timeout),
        )


def ensure_ssh_key(path: Path) -> Path:
    """ecmptui's own SSH key pair (ed25519), created on first use with mode 0600."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = asyncssh.generate_private_key("ssh-ed25519", comment="ecmptui")
        key.write_private_key(path)
        path.chmod(0o600)
        key.write_public_key(path.with_name(path.name + ".pub"))
    return path


def public_key_line(path: Path) -> str:
    ensure_ssh_key(path)
    pub = path.with_name(path.name + ".pub")
    if not pub.exists():
        key = asyncssh.read_private_key(path)
        key.write_public_key(pub)
    return " ".join(pub.read_text().split()[:2])


class NodePool:
    """Keeps one SSH connection per node open for callers that ask every second (the
    dashboard); a connection that fails is dropped and made again next time."""

    def __init__(self, d: Deployment) -> None:
        self.d = d
        self.nodes: dict[str, Node] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @asynccontextmanager
    async def node(self, rec: NodeRecord) -> AsyncIterator[Node]:
        lock = self._locks.setdefault(rec.name, asyncio.Lock())
        async with lock:
            node = self.nodes.get(rec.name)
            if node is not None and not node.usable:  # e.g. a cancelled command
                await node.close()
                node = None
            if node is None or node.host != rec.mgmt_address:
                node = self.nodes[rec.name] = await self.d.connect(rec)
        try:
            yield node
        except EcmpError:
            if self.nodes.get(rec.name) is node:
                del self.nodes[rec.name]
                await node.close()
            raise

    async def close(self) -> None:
        nodes, self.nodes = list(self.nodes.values()), {}
        await asyncio.gather(*(n.close() for n in nodes), return_exceptions=True)
