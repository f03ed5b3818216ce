"""Target `static`: nodes someone else provisioned, listed in the config. No API at all:
the inventory is the config, and everything else goes over SSH to the nodes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ecmptui.config import Settings, StaticNode
from ecmptui.deployment.inventory import NodeAccess, ensure_ssh_key
from ecmptui.deployment.port import Capabilities, Deployment, Target, TargetKind
from ecmptui.deployment.records import Inventory, NodeRecord
from ecmptui.errors import EcmpError
from ecmptui.family import Family, url_family, url_host
from ecmptui.jsonish import JsonObject
from ecmptui.node.server import HostKeyPolicy, Layout, Node
from ecmptui.waits import scaled


class StaticTarget(Target):
    kind = TargetKind.STATIC
    caps = Capabilities(faults=False, router_view=False, api=False, read_only_default=True)

    def label(self) -> str:
        return f"static ({len(self.settings.static.nodes)} nodes)"

    def lock_key(self) -> str:
        hosts = sorted(f"{n.host}:{n.port}" for n in self.settings.static.nodes)
        return "static " + ",".join(hosts)

    def probe_netns(self) -> str | None:
        return self.settings.static.probe_netns or None

    def open(self) -> StaticDeployment:
        return StaticDeployment(self.settings, self)


class StaticDeployment(NodeAccess):
    """The same surface as inventory.Deployment, for nodes listed in the settings."""

    def __init__(self, settings: Settings, target: StaticTarget) -> None:
        self.settings = settings
        self.target = target
        self.client = None
        self._nodes = {n.name: n for n in settings.static.nodes}

    @property
    def probe_url(self) -> str:
        st = self.settings.static
        return st.probe_url or f"http://{url_host(st.eips[0])}/"

    def inventory(self) -> Inventory:
        st = self.settings.static
        nodes = [
            NodeRecord(n.name, i, "-", n.host, None, None, "configured")
            for i, n in enumerate(st.nodes, start=1)
        ]
        by_family: dict[Family, str] = {}
        for e in st.eips:  # the first of each family
            by_family.setdefault(Family.of(e), e)
        return Inventory(
            "static", by_family.get(Family.IPV4), None, nodes, by_family.get(Family.IPV6)
        )

    async def ainventory(self) -> Inventory:
        return self.inventory()

    async def reboot(self, rec: NodeRecord, timeout: float = 90.0) -> float:
        raise EcmpError(
            "target static: ecmptui has no API to reboot these servers; reboot "
            f"{rec.name} yourself (its routing daemon, nginx and the EIP come back by themselves "
            "if it was provisioned by ecmptui)"
        )

    def inventory_or_last(self, warn: Callable[[str], None]) -> Inventory:
        return self.inventory()  # the settings: nothing to be out of reach

    def forget_host(self, address: str) -> None:
        """ecmptui never deletes a static node: its pinned key stays."""

    def host_key_policy(self) -> HostKeyPolicy:
        return HostKeyPolicy(self.settings.ssh.host_key_policy, self.settings.known_hosts_path)

    def layout(self, rec: NodeRecord) -> Layout:
        n = self._nodes[rec.name]
        return Layout(
            bird_conf=n.bird_conf,
            bird_socket=n.bird_socket,
            state_dir=n.state_dir,
            eip_protocol=n.eip_protocol,
            bird_unit=n.bird_unit,
            nginx_unit=n.nginx_unit,
            frr_conf=n.frr_conf,
            frr_unit=n.frr_unit,
            daemon=n.daemon or None,
        )

    def probe_target(self, inv: Inventory, family: Family | None = None) -> tuple[str, str | None]:
        """The URL to probe and the namespace to probe from: the configured URL, or for
        `family` the EIP of that family."""
        if family is None or url_family(self.probe_url) is family:
            return self.probe_url, self.target.probe_netns()
        return f"http://{url_host(inv.eip_for(family))}/", self.target.probe_netns()

    def key_for(self, n: StaticNode) -> Path:
        return Path(n.key).expanduser() if n.key else ensure_ssh_key(self.settings.ssh_key_path)

    async def connect(self, rec: NodeRecord) -> Node:
        n = self._nodes[rec.name]
        return await Node.connect(
            rec.name,
            rec.index,
            n.host,
            self.layout(rec),
            user=n.user,
            key=self.key_for(n),
            policy=self.host_key_policy(),
            port=n.port,
            timeout=scaled(self.settings.ssh.connect_timeout),
        )


# -- checking nodes (the Provision screen and `ecmptui check` on this target) -----------

NGINX_PROBE = (
    "import http.client,sys\nc=http.client.HTTPConnection('127.0.0.1',80,timeout=2)\n"
    "c.request('GET','/')\nprint(c.getresponse().status)"
)


@dataclass
class NodeCheck:
    """What `check` found on one node (over SSH): each check, and a line per problem."""

    name: str
    host: str
    ssh: bool = False
    daemon: str | None = None  # the routing daemon that answered: bird, frr
    sessions: str = "-"  # "2/2 Established"
    eip_on_lo: bool = False
    nginx: bool = False
    faults: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def row(self) -> JsonObject:
        """Its row of `check --json` (and of the Provision screen, `display.check_line`)."""
        return {"kind": "node", **asdict(self), "ok": self.ok}


async def check_node(d: Deployment, rec: NodeRecord, eips: list[str]) -> NodeCheck:
    """Each check's result for one node: ssh, daemon, sessions, eip_on_lo, nginx, faults;
    and its problems (one line each)."""
    from ecmptui.node.faults import active_faults
    from ecmptui.node.server import NodeError

    res = NodeCheck(rec.name, rec.mgmt_address)
    if rec.state == "failed" and d.client is not None:
        why = await d.client.acall(d.client.device_failure, rec.device_id)
        res.problems.append(f"device failed: {why} (the next `provision` replaces it)")
        return res
    try:
        async with d.node(rec) as node:
            res.ssh = True
            res.faults = await active_faults(node)
            if res.faults:
                res.problems.append(
                    f"carries {', '.join(res.faults)} (undo: ecmptui node restore {rec.name})"
                )
            try:
                peers = await node.sessions()
                res.daemon = node.daemon.name
                up = sum(p.established for p in peers)
                res.sessions = f"{up}/{len(peers)} Established"
                if not peers or up < len(peers):
                    res.problems.append(f"BGP sessions {res.sessions}")
            except NodeError as exc:
                res.problems.append(str(exc).removeprefix(f"{rec.name}: "))
            missing = await node.missing_eips(eips)
            res.eip_on_lo = bool(eips) and not missing
            if not eips:
                res.problems.append("no EIP to look for on lo")
            elif missing:
                verb = "is" if len(missing) == 1 else "are"
                res.problems.append(f"{' and '.join(missing)} {verb} not on lo")
            probe = await node.run("python3", "-c", NGINX_PROBE, check=False)
            res.nginx = probe.exit_status == 0 and probe.stdout.strip()[:1] in "23"
            if not res.nginx:
                res.problems.append("nginx does not answer on 127.0.0.1:80")
    except EcmpError as exc:
        res.problems.append(str(exc).removeprefix(f"{rec.name} ({rec.mgmt_address}): "))
    return res


async def check_all(d: Deployment, warn: Callable[[str], None] | None = None) -> list[NodeCheck]:
    """Every node's checks; through an API outage from the last inventory (`warn` says so)."""
    inv = await asyncio.to_thread(d.inventory_or_last, warn or (lambda _m: None))
    eips = list(inv.eips.values())
    return list(await asyncio.gather(*(check_node(d, r, eips) for r in inv.nodes)))


# -- export ------------------------------------------------------------------------------------


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string of printable text is a valid TOML basic string


async def node_daemons(d: Any, inv: Inventory) -> dict[str, str]:
    """The routing daemon each node runs, asked over SSH (a node that does not answer is
    left out: the static target detects it when it connects)."""

    async def one(rec: NodeRecord) -> tuple[str, str | None]:
        try:
            async with d.node(rec) as node:
                return rec.name, node.daemon.name
        except EcmpError:
            return rec.name, None

    found = await asyncio.gather(*(one(r) for r in inv.nodes))
    return {name: daemon for name, daemon in found if daemon}


def export_static(d: Any, output: Path, daemons: dict[str, str] | None = None) -> list[str]:
    """Write a `static` config for what is provisioned now (`daemons`: each node's routing
    daemon, written where known); returns the files written."""
    inv = d.inventory()
    if not inv.eips or not inv.nodes:
        raise EcmpError("nothing provisioned to export: run `ecmptui provision` first")
    settings = d.settings
    lines = [
        f"# ecmptui static target, exported from the {d.target.kind.value} deployment",
        'target = "static"',
        "read_only = true   # the dashboard changes nothing until you set this to false",
        "",
        "[ssh]",
        f"user = {_toml_str(settings.ssh.user)}",
        f"key = {_toml_str(str(settings.ssh_key_path))}",
    ]
    written = [str(output)]
    if d.endpoint.known_hosts:  # the lab publishes its host keys: keep checking them strictly
        # absolute: the config must work from any directory, not only where it was written
        known = output.absolute().with_name(output.name + ".known_hosts")
        known.write_text(Path(d.endpoint.known_hosts).read_text())
        written.append(str(known))
        lines += [f"known_hosts = {_toml_str(str(known))}", 'host_key_policy = "strict"']
    else:
        lines += [
            f"known_hosts = {_toml_str(str(settings.known_hosts_path))}",
            'host_key_policy = "pin"',
        ]
    lines += [
        "",
        "[static]",
        f"eips = [{', '.join(_toml_str(e) for e in inv.eips.values())}]",
        f"probe_url = {_toml_str(f'http://{url_host(inv.eip_for(inv.families[0]))}/')}",
    ]
    netns = d.target.probe_netns()
    if netns:
        lines.append(f"probe_netns = {_toml_str(netns)}  # the EIP is routed only there")
    for rec in inv.nodes:
        lay = d.layout(rec)
        lines += [
            "",
            "[[static.nodes]]",
            f"name = {_toml_str(rec.name)}",
            f"host = {_toml_str(rec.mgmt_address)}",
        ]
        daemon = (daemons or {}).get(rec.name)
        if daemon:
            lines.append(f"daemon = {_toml_str(daemon)}")
        if daemon != "frr":
            lines += [
                f"bird_socket = {_toml_str(lay.bird_socket)}",
                f"bird_conf = {_toml_str(lay.bird_conf)}",
            ]
        if daemon != "bird":
            lines.append(f"frr_conf = {_toml_str(lay.frr_conf)}")
        lines += [
            f"state_dir = {_toml_str(lay.state_dir)}",
        ]
    output.write_text("\n".join(lines) + "\n")
    return written
