"""The lab's routing, in Metal's shape: two core routers and a forwarding fabric.

- `core1` and `core2` (AS 65530, BGP addresses 169.254.255.1 and .2) are BGP speakers: every
  server peers with both, multihop, through its private gateway. They accept only the
  project's EIPs and pass every path on to the fabric (iBGP, ADD-PATH, next hop unchanged).
- The fabric holds the servers' private gateways and the client side. Its BIRD learns the
  EIP from both cores and installs one multipath kernel route whose next hops are the
  announcing servers, whichever core it heard them from: losing one core changes nothing
  in the forwarding table.

Each of the three runs BIRD under systemd in a machine from the lab image; configs are
validated with `bird -p` in the machine before they replace the old one (mode 0640, group
bird: they hold the MD5 password).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from ecmptui.errors import EcmpError
from ecmptui.family import host_prefix
from ecmptui.lab import fabric, image
from ecmptui.lab.instance import (
    FABRIC_ID,
    PROJECT_BLOCK6,
    ROUTER_ASN,
    ROUTER_PEER_IPS,
    ROUTER_PEER_IPS6,
    ROUTERS,
    LabInstance,
    router_link,
    router_link6,
    server_link_addr,
    server_link_addr6,
)
from ecmptui.lab.machine import Machine
from ecmptui.node import bird, bird_daemon, faults, routing
from ecmptui.waits import Deadline

# The same fault mechanics as a node's: its eth0 (here the fabric link) dropped both ways,
# and a runtime drop-in that keeps a killed BIRD down until restore.
NO_RESTART_DROPIN = routing.FAULT_DROPIN.format(unit="bird")


@dataclass(frozen=True)
class RouterPeer:
    """One BGP session a core router accepts: from server n in AS `asn`."""

    n: int
    asn: int
    md5: str | None = None
    family: int = 4

    @property
    def protocol(self) -> str:
        return session_protocol(self.n, self.family)

    @property
    def address(self) -> str:
        return server_link_addr(self.n) if self.family == 4 else server_link_addr6(self.n)


def session_protocol(n: int, family: int) -> str:
    """The core's protocol for server n's session in `family` (s1, s1_6, ...)."""
    return f"s{n}" if family == 4 else f"s{n}_6"


def _eip_filter(name: str, eips: list[str]) -> list[str]:
    nets = ", ".join(f"{e}/32" for e in sorted(eips))
    accept = [f"  if net ~ [ {nets} ] then accept;"] if eips else []
    return [f"filter {name} {{", *accept, "  reject;", "}"]


def _block6_filter(name: str) -> list[str]:
    """IPv6 as Metal's routes_in said it: anything inside the project's /56 (exact false)."""
    return [
        f"filter {name} {{",
        f"  if net ~ [ {PROJECT_BLOCK6}{{{PROJECT_BLOCK6.prefixlen},128}} ] then accept;",
        "  reject;",
        "}",
    ]


def render_core_config(
    router: str,
    peers: list[RouterPeer],
    eips: list[str],
    timers: bird.BgpTimers = bird.BgpTimers(),
    bfd: bird.BfdTimers = bird.BfdTimers(),
) -> str:
    """bird.conf of core router `router`: customers multihop, every path to the fabric."""
    own = ROUTER_PEER_IPS[router]
    fab_side, _ = router_link(router)
    fab6, _ = router_link6(router)
    out = [
        'timeformat protocol "%F %T.%3f";',
        f"router id {own};",
        "debug protocols { states };",
        "protocol device { scan time 10; }",
        # the servers' private networks are behind the fabric: resolves their next hops
        f"protocol static fabric_routes {{ ipv4; route 198.18.0.0/15 via {fab_side}; }}",
        f"protocol static fabric_routes6 {{ ipv6; route {PROJECT_BLOCK6} via {fab6}; }}",
        bfd.render("*"),
        *_eip_filter("customer_in", eips),
        *_block6_filter("customer_in6"),
        "template bgp customer {",
        f"  local {own} as {ROUTER_ASN};",
        "  multihop 5;",
        timers.render(),
        "  bfd on;  # only for servers that run BFD too (provisioned with --bfd)",
        "  ipv4 { import filter customer_in; export none; };",
        "}",
        "template bgp customer6 {",
        f"  local {ROUTER_PEER_IPS6[router]} as {ROUTER_ASN};",
        "  multihop 5;",
        timers.render(),
        "  bfd on;",
        "  ipv6 { import filter customer_in6; export none; };",
        "}",
    ]
    for p in sorted(peers, key=lambda p: (p.family, p.n)):
        pw = f' password "{p.md5}";' if p.md5 else ""
        template = "customer" if p.family == 4 else "customer6"
        out.append(
            f"protocol bgp {p.protocol} from {template} {{ neighbor {p.address} as {p.asn};{pw} }}"
        )
    out += [
        "protocol bgp fabric {",
        f"  local as {ROUTER_ASN};",
        f"  neighbor {fab_side} as {ROUTER_ASN};",
        "  direct;",
        timers.render(),
        "  bfd on;",
        "  ipv4 {",
        "    import none;",
        "    export filter { if source = RTS_BGP then accept; reject; };",
        "    next hop keep;   # the fabric forwards straight to the servers",
        "    add paths tx;    # every server's path, not only the best",
        "  };",
        "}",
        "protocol bgp fabric6 {",
        f"  local as {ROUTER_ASN};",
        f"  neighbor {fab6} as {ROUTER_ASN};",
        "  direct;",
        timers.render(),
        "  bfd on;",
        "  ipv6 {",
        "    import none;",
        "    export filter { if source = RTS_BGP then accept; reject; };",
        "    next hop keep;",
        "    add paths tx;",
        "  };",
        "}",
    ]
    return "\n".join(out) + "\n"


ECMP_MODES = ("hash", "resilient")
AGENT_TABLE = 100  # resilient: BIRD's routes go here; the agent builds the groups
AGENT_PATH = "/usr/local/lib/ecmptui/ecmp-agent.py"
AGENT_UNIT = "ecmptui-ecmp-agent.service"
AGENT_WEIGHTS = "/run/ecmptui-agent/weights.json"
AGENT_STATUS = "/run/ecmptui-agent/status.json"
AGENT_STALE = 5.0  # seconds without a word from the agent: it is not working


@dataclass(frozen=True)
class Resilient:
    """The resilient next-hop group's knobs: buckets, and after how long an idle bucket may
    move to a new or under-loaded server (unbalanced 0: never force a busy one)."""

    buckets: int = 128
    idle_timer: int = 10
    unbalanced_timer: int = 0

    def validate(self) -> Resilient:
        if (
            not 2 <= self.buckets <= 4096
            or not 0 <= self.idle_timer <= 3600
            or not 0 <= self.unbalanced_timer <= 3600
        ):
            raise EcmpError("resilient ECMP: buckets 2-4096, idle and unbalanced timers 0-3600 s")
        return self


AGENT_UNIT_TEXT = f"""[Unit]
Description=ecmptui resilient ECMP agent (mirrors BIRD's routes into resilient groups)
After=network.target bird.service
StartLimitIntervalSec=0

[Service]
ExecStart=/usr/bin/python3 {AGENT_PATH}
Restart=always
RestartSec=0.2
RuntimeDirectory=ecmptui-agent
RuntimeDirectoryPreserve=yes

[Install]
WantedBy=multi-user.target
"""


def ecmp_mode(lab: LabInstance) -> str:
    """The lab's ECMP mode, as it was started (hash when it does not say)."""
    try:
        mode = (lab.state_dir / "ecmp").read_text().strip()
    except OSError:
        return "hash"
    return mode if mode in ECMP_MODES else "hash"


def render_fabric_config(
    eips: list[str],
    timers: bird.BgpTimers = bird.BgpTimers(),
    bfd: bird.BfdTimers = bird.BfdTimers(),
    mode: str = "hash",
) -> str:
    """bird.conf of the fabric: learns the EIPs from both cores, ECMP into the kernel (hash:
    the main table, a multipath route; resilient: table 100, for the agent)."""
    out = [
        'timeformat protocol "%F %T.%3f";',
        f"router id {FABRIC_ID};",
        "debug protocols { states };",
        "protocol device { scan time 10; }",
        # the servers: next hops resolve
        'protocol direct { ipv4; ipv6; interface "rt-s*"; }',
        *_kernel("ipv4", mode),
        *_kernel("ipv6", mode),
        bfd.render("rt-core*"),
        *_eip_filter("eips_in", eips),
        *_block6_filter("eips_in6"),
        "template bgp core {",
        f"  local as {ROUTER_ASN};",
        "  direct;",
        timers.render(),
        "  bfd on;",
        "  ipv4 {",
        "    import filter eips_in;",
        "    export none;",
        "    add paths rx;",
        "    gateway recursive;",
        "    igp table master4;",
        "  };",
        "}",
        "template bgp core6 {",
        f"  local as {ROUTER_ASN};",
        "  direct;",
        timers.render(),
        "  bfd on;",
        "  ipv6 {",
        "    import filter eips_in6;",
        "    export none;",
        "    add paths rx;",
        "    gateway recursive;",
        "    igp table master6;",
        "  };",
        "}",
    ]
    for router in ROUTERS:
        _, router_side = router_link(router)
        _, router6 = router_link6(router)
        out.append(f"protocol bgp {router} from core {{ neighbor {router_side} as {ROUTER_ASN}; }}")
        out.append(f"protocol bgp {router}_6 from core6 {{ neighbor {router6} as {ROUTER_ASN}; }}")
    return "\n".join(out) + "\n"


def _kernel(channel: str, mode: str) -> list[str]:
    """The fabric's kernel protocol of one family: BIRD's EIP routes, merged into ECMP."""
    return [
        "protocol kernel {",
        f"  {channel} {{",
        "    import none;",
        "    export filter { if source = RTS_BGP then accept; reject; };",
        "  };",
        "  merge paths on;   # ECMP: all equal paths become one multipath route",
        "  learn off;",
        *(
            [f"  kernel table {AGENT_TABLE};   # the agent turns it into resilient groups"]
            if mode == "resilient"
            else []
        ),
        "}",
    ]


class BirdMachine:
    """A lab machine whose job is BIRD (a core router or the fabric)."""

    CONF = "/etc/bird/bird.conf"

    def __init__(self, name: str, machine: Machine) -> None:
        self.name, self.machine = name, machine

    def birdc(self, *args: str, timeout: float = 5.0) -> str:
        try:
            return self.machine.run("birdc", *args, timeout=timeout).stdout
        except EcmpError as exc:
            raise fabric.FabricError(str(exc)) from exc

    def write_validated(self, text: str) -> None:
        new = self.CONF + ".new"
        self.machine.put(new, text, 0o640, owner="bird")
        check = self.machine.run("bird", "-p", "-c", new, check=False)
        if check.returncode != 0:
            self.machine.run("rm", "-f", new, check=False)
            msg = (check.stderr or check.stdout).strip().splitlines()
            raise EcmpError(
                f"{self.name}: config rejected by bird -p: {msg[-1] if msg else check.returncode}"
            )
        self.machine.run("mv", new, self.CONF)

    def start(self, config: str) -> None:
        m = self.machine
        m.put("/etc/hostname", self.name + "\n")
        m.put(self.CONF, config, 0o640, owner="bird")
        m.enable("bird.service")
        m.mask("ssh.service")  # nobody logs in to a router
        m.boot()

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = Deadline(timeout)  # longer on a loaded machine
        while not deadline.expired():
            if self.machine.run("birdc", "show", "status", check=False, timeout=5).returncode == 0:
                return
            time.sleep(0.02)
        raise EcmpError(f"{self.name}: BIRD did not come up within {deadline.elapsed():.0f} s")

    def reconfigure(self, config: str) -> None:
        self.write_validated(config)
        out = self.birdc("configure")
        if "Reconfigured" not in out and "Reconfiguration in progress" not in out:
            raise EcmpError(f"{self.name}: reconfigure failed: {out.strip().splitlines()[-1:]}")

    def protocols(self) -> dict[str, bird.ProtocolInfo]:
        try:
            return {
                p.name: p
                for p in bird.parse_protocols(self.birdc("show", "protocols", "all", timeout=2))
            }
        except (fabric.FabricError, bird.BirdParseError):
            return {}

    def learned_routes(self, protocol: str) -> list[str]:
        try:
            out = self.birdc("show", "route", "protocol", protocol, timeout=2)
        except fabric.FabricError:
            return []
        return bird.parse_route_prefixes(out)

    def state(self) -> str:
        """running, frozen (SIGSTOPped), not running, or down (the machine is off)."""
        pid = self.machine.pid()
        if pid is None:
            return "down"
        res = self.machine.run("systemctl", "show", "-p", "MainPID", "--value", "bird", check=False)
        main = res.stdout.strip()
        if not main.isdigit() or main == "0":
            return "not running"
        status = self.machine.get(f"/proc/{main}/status") or ""
        return "frozen" if "\nState:\tT" in status else "running"


def core(lab: LabInstance, router: str) -> BirdMachine:
    if router not in ROUTERS:
        raise EcmpError(f"no router {router!r} (routers: {', '.join(ROUTERS)})")
    return BirdMachine(
        router,
        Machine(
            lab.router_machine(router),
            lab.router_ns(router),
            lab.router_dir(router),
            image.image("server").rootfs,
        ),
    )


def fabric_bird(lab: LabInstance) -> BirdMachine:
    return BirdMachine(
        "fabric",
        Machine(lab.fabric_machine, lab.fabric_ns, lab.fabric_dir, image.image("server").rootfs),
    )


class Backbone:
    """The two core routers and the fabric, configured together from the API's state."""

    def __init__(
        self, lab: LabInstance, mode: str | None = None, resilient: Resilient = Resilient()
    ) -> None:
        self.lab = lab
        self.mode = mode or ecmp_mode(lab)
        self.resilient = resilient
        self.cores = {r: core(lab, r) for r in ROUTERS}
        self.fabric = fabric_bird(lab)

    @property
    def machines(self) -> list[Machine]:
        return [self.fabric.machine, *(c.machine for c in self.cores.values())]

    def start(self) -> None:
        (self.lab.state_dir / "ecmp").write_text(self.mode + "\n")
        if self.mode == "resilient":
            self._install_agent()
        self.fabric.start(render_fabric_config([], mode=self.mode))
        for r, c in self.cores.items():
            c.start(render_core_config(r, [], []))
        for b in (self.fabric, *self.cores.values()):
            b.wait_ready()

    def _install_agent(self) -> None:
        from importlib import resources

        m = self.fabric.machine
        script = (resources.files("ecmptui.lab") / "ecmp_agent.py").read_text()
        m.put(AGENT_PATH, script, 0o755)
        r = self.resilient.validate()
        m.put(
            "/etc/ecmptui/ecmp-agent.json",
            json.dumps(
                {
                    "buckets": r.buckets,
                    "idle_timer": r.idle_timer,
                    "unbalanced_timer": r.unbalanced_timer,
                }
            )
            + "\n",
        )
        # /usr/lib: /lib is a symlink to it in the image, and must stay one
        m.put(f"/usr/lib/systemd/system/{AGENT_UNIT}", AGENT_UNIT_TEXT)
        m.enable(AGENT_UNIT)

    def reconfigure(self, peers: list[RouterPeer], eips: list[str]) -> None:
        for r, c in self.cores.items():
            c.reconfigure(render_core_config(r, peers, eips))
        self.fabric.reconfigure(render_fabric_config(eips, mode=self.mode))

    def protocols(self) -> dict[str, dict[str, bird.ProtocolInfo]]:
        """Every core's protocols, by router name."""
        return {r: c.protocols() for r, c in self.cores.items()}

    def learned_routes(self, protocol: str) -> list[str]:
        """The EIPs either core learned over `protocol` (a server's session)."""
        out: set[str] = set()
        for c in self.cores.values():
            out.update(c.learned_routes(protocol))
        return sorted(out)

    def nexthops(self, prefix: str) -> list[str]:
        """Gateways of the fabric's kernel route for `prefix`, right now."""
        return fib_nexthops(self.lab, prefix)


def _ip_json(lab: LabInstance, *args: str, family: str = "") -> list[Any]:
    """`ip -j` in the fabric; `family` "-6" for IPv6 routes (ip does not infer it)."""
    flags = [family] if family else []
    out = fabric.run(["ip", "-j", *flags, "-n", lab.fabric_ns, *args], check=False)
    try:
        data = json.loads(out or "[]")
    except json.JSONDecodeError:
        return []
    return data if isinstance(data, list) else []


def fib_view(
    lab: LabInstance, prefix: str, buckets: bool = False
) -> tuple[list[str], dict[str, int]]:
    """The gateways the fabric forwards `prefix` to (a multipath route's, or a resilient
    group's members) and, with `buckets`, how many of the group's buckets each holds; one
    read of the routes, the next hops and the buckets."""
    hops: list[str] = []
    counts: dict[str, int] = {}
    nexthops: list[Any] | None = None
    family = "-6" if ":" in prefix else ""
    for r in _ip_json(lab, "route", "show", prefix, family=family):
        if "nhid" not in r:
            if "gateway" in r:
                hops.append(r["gateway"])
            hops += [h["gateway"] for h in r.get("nexthops", []) if "gateway" in h]
            continue
        # a group (resilient mode): its members, however `ip route` shows them
        if nexthops is None:
            nexthops = _ip_json(lab, "nexthop", "show")
        members = _group_members(nexthops, int(r["nhid"]))
        hops += list(members.values())
        if buckets:
            for b in _ip_json(lab, "nexthop", "bucket", "show", "id", str(r["nhid"])):
                gw = members.get(b.get("bucket", {}).get("nhid"))
                if gw:
                    counts[gw] = counts.get(gw, 0) + 1
    return sorted(hops), counts


def fib_nexthops(lab: LabInstance, prefix: str) -> list[str]:
    return fib_view(lab, prefix)[0]


def _group_members(nexthops: list[Any], group: int) -> dict[int, str]:
    """A next-hop group's members (from `ip -j nexthop show`): nexthop id -> gateway."""
    by_id = {n["id"]: n.get("gateway") for n in nexthops if "id" in n}
    out = {}
    for g in nexthops:
        if g.get("id") != group:
            continue
        for member in g.get("group", []):
            gw = by_id.get(member.get("id"))
            if gw:
                out[member["id"]] = gw
    return out


def set_weight(lab: LabInstance, gateway: str, weight: int | None) -> None:
    """Resilient mode: the agent's weight for a gateway (None: back to full)."""
    m = fabric_bird(lab).machine
    current = json.loads(m.get(AGENT_WEIGHTS) or "{}")
    if weight is None:
        current.pop(gateway, None)
    else:
        current[gateway] = weight
    m.put(AGENT_WEIGHTS, json.dumps(current) + "\n")


def agent_status(lab: LabInstance) -> str | None:
    """Resilient mode: "ok", or what is wrong with the fabric's ECMP agent (its own error,
    or that it does not report); None in hash mode (no agent)."""
    if ecmp_mode(lab) != "resilient":
        return None
    m = fabric_bird(lab).machine
    raw = m.get(AGENT_STATUS)
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return "agent not reporting (no status file): see journalctl -u " + AGENT_UNIT
    age = time.time() - float(data.get("updated") or 0)
    if age > AGENT_STALE:
        return f"agent not reporting for {age:.0f} s: see journalctl -u {AGENT_UNIT}"
    if data.get("state") == "ok":
        return "ok"
    return f"agent {data.get('state')}: {data.get('error') or 'unknown error'}"


def learned_from(lab: LabInstance, router: str, eip: str) -> list[str]:
    """The BGP protocols (`s1`, `s2`, ...) through which `router` has a route for the EIP."""
    try:
        out = core(lab, router).birdc("show", "route", host_prefix(eip), "all", timeout=2)
    except fabric.FabricError:
        return []
    return bird.parse_route_protocols(out)


# -- router faults (lab only) ----------------------------------------------------------------


def _running_core(lab: LabInstance, router: str) -> Machine:
    m = core(lab, router).machine
    if not m.running():
        raise EcmpError(f"{router} is not running (is the lab up?)")
    return m


def kill_bird(lab: LabInstance, router: str) -> None:
    """The core's BIRD killed, and kept down (no restart) until restore."""
    m = _running_core(lab, router)
    m.put(NO_RESTART_DROPIN, bird_daemon.NO_RESTART)
    m.run("systemctl", "daemon-reload")
    m.run("systemctl", "kill", "-s", "KILL", "bird")


def freeze_bird(lab: LabInstance, router: str) -> None:
    """The core's BIRD stopped with SIGSTOP: its sessions stall silently."""
    _running_core(lab, router).run("systemctl", "kill", "-s", "STOP", "--kill-who=main", "bird")


def isolate(lab: LabInstance, router: str) -> None:
    """The core silent on the fabric (nftables drops everything on its link)."""
    _running_core(lab, router).run("nft", "-f", "-", input=faults.ISOLATE_RULES)


def restore(lab: LabInstance, router: str) -> list[str]:
    """Undo every fault on a core router; returns what was undone."""
    b = core(lab, router)
    m = b.machine
    if not m.running():
        raise EcmpError(f"{router} is not running (is the lab up?)")
    undone = []
    if m.run("nft", "delete", "table", "inet", faults.ISOLATE_TABLE, check=False).returncode == 0:
        undone.append("isolate")
    if b.state() == "frozen":
        m.run("systemctl", "kill", "-s", "CONT", "--kill-who=main", "bird")
        undone.append("freeze-bird")
    if m.get(NO_RESTART_DROPIN) is not None:
        m.run("rm", "-f", NO_RESTART_DROPIN)
        m.run("systemctl", "daemon-reload")
    if b.state() == "not running":
        m.run("systemctl", "start", "bird")
        b.wait_ready()
        undone.append("kill-bird")
    return undone
