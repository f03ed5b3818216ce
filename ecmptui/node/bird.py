"""BIRD 2: config rendering for a node and parsing of `birdc` output. Pure functions only."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from ecmptui.family import Family, canonical
from ecmptui.jsonish import JsonObject

# Protocol names used in every rendered node config.
EIP_PROTOCOL = "eip"  # `protocol direct eip`: disabling it withdraws the EIP, BGP stays up
PEER_PROTOCOL_PREFIX = "peer"  # `protocol bgp peer1`, `peer2`, ... one per peer IP


class BirdParseError(ValueError):
    """birdc output that does not have the expected shape."""


@dataclass(frozen=True)
class BgpTimers:
    """Session timers in seconds. BIRD's defaults (retry 120 s, hold 240 s) are far too slow."""

    connect_delay: int = 1
    connect_retry: int = 1
    error_wait: tuple[int, int] = (1, 5)
    hold: int = 3
    keepalive: int = 1
    startup_hold: int = 3

    def render(self, indent: str = "  ") -> str:
        return "\n".join(
            indent + line
            for line in (
                f"connect delay time {self.connect_delay};",
                f"connect retry time {self.connect_retry};",
                f"error wait time {self.error_wait[0]},{self.error_wait[1]};",
                f"hold time {self.hold};",
                f"keepalive time {self.keepalive};",
                f"startup hold time {self.startup_hold};",
            )
        )


@dataclass(frozen=True)
class BfdTimers:
    min_rx_ms: int = 100
    min_tx_ms: int = 100
    multiplier: int = 3

    def render(self, interface: str) -> str:
        """A BFD protocol with these timers for direct sessions on `interface` and for
        multihop sessions (Metal's peers are multihop)."""
        timers = (
            f"    min rx interval {self.min_rx_ms} ms;\n"
            f"    min tx interval {self.min_tx_ms} ms;\n"
            "    idle tx interval 1 s;\n"
            f"    multiplier {self.multiplier};\n"
        )
        return (
            "protocol bfd {\n"
            f'  interface "{interface}" {{\n{timers}  }};\n'
            f"  multihop {{\n{timers}  }};\n"
            "}\n"
        )


@dataclass(frozen=True)
class Neighbor:
    """One entry of Metal's `devices/{id}/bgp/neighbors` (only the fields BIRD needs)."""

    customer_as: int
    customer_ip: str
    peer_as: int
    peer_ips: tuple[str, ...]
    multihop: bool = False
    md5_password: str | None = None
    routes_in: tuple[str, ...] = ()

    @property
    def family(self) -> Family:
        return Family.of(self.customer_ip)

    @classmethod
    def from_api(cls, data: JsonObject) -> Neighbor:
        """Build from the API's JSON (addresses in any valid spelling: the real API wrote
        IPv6 peers out in full); raises BirdParseError on a malformed entry."""
        try:
            md5 = data.get("md5_password") if data.get("md5_enabled") else None
            nb = cls(
                customer_as=int(data["customer_as"]),
                customer_ip=canonical(data["customer_ip"]),
                peer_as=int(data["peer_as"]),
                peer_ips=tuple(canonical(p) for p in data["peer_ips"]),
                multihop=bool(data.get("multihop", False)),
                md5_password=md5 or None,
                routes_in=tuple(r["route"] for r in data.get("routes_in") or []),
            )
            family = data.get("address_family", nb.family.value)
        except (KeyError, TypeError, ValueError) as exc:
            raise BirdParseError(f"malformed BGP neighbor data: {exc}") from exc
        if family != nb.family.value or any(Family.of(p) != nb.family for p in nb.peer_ips):
            raise BirdParseError(
                f"malformed BGP neighbor data: address_family {family} does not match its addresses"
            )
        return nb


def by_family(neighbors: list[JsonObject]) -> dict[Family, Neighbor]:
    """The API's neighbor records of a device, one per family."""
    out: dict[Family, Neighbor] = {}
    for data in neighbors:
        nb = Neighbor.from_api(data)
        out.setdefault(nb.family, nb)
    return out


@dataclass(frozen=True)
class FamilyBgp:
    """One address family's part of a node's config: the EIP it announces, the API's
    neighbor record, and the gateway its multihop peers' static routes point at."""

    eip: str
    neighbor: Neighbor
    gateway: str | None = None

    @property
    def family(self) -> Family:
        return Family.of(self.eip)

    @property
    def suffix(self) -> str:
        """Added to protocol, filter and template names: IPv4 keeps the plain names."""
        return "" if self.family is Family.IPV4 else "6"


@dataclass(frozen=True)
class NodeBgpSpec:
    """Everything needed to render one node's bird.conf (one FamilyBgp per family)."""

    router_id: str
    families: tuple[FamilyBgp, ...]
    bfd: bool = False
    announce: bool = True  # False renders the EIP protocol disabled (withdrawn)
    # families the operator withdrew alone (`node withdraw --family`): their filter rejects
    withdrawn_families: frozenset[Family] = frozenset()
    timers: BgpTimers = field(default_factory=BgpTimers)
    bfd_timers: BfdTimers = field(default_factory=BfdTimers)
    log_file: str | None = None


# a family withdrawn alone: its export filter's accept line, commented out
WITHDRAWN_MARK = "  # withdrawn by the operator: "


def export_line(eip: str) -> str:
    """The line of a family's export filter that lets its EIP out."""
    return f"  if net = {eip}/{Family.of(eip).host_bits} then accept;"


def _export_lines(eip: str) -> tuple[str, str]:
    """A family's export line as announced, and as withdrawn by the operator."""
    on = export_line(eip)
    return on, WITHDRAWN_MARK + on.lstrip()


def has_family_export(config: str, eip: str) -> bool:
    """Whether `config` exports `eip` the way ecmptui renders it (announced or withdrawn
    alone): only then can one family be narrowed in it."""
    return any(line + "\n" in config for line in _export_lines(eip))


def set_family_export(config: str, eip: str, announce: bool) -> str:
    """`config` with the export of `eip` (its family alone) on or off; unchanged when it
    already is, or when the config was not rendered by ecmptui (no such line)."""
    on, off = _export_lines(eip)
    return config.replace(off, on) if announce else config.replace(on + "\n", off + "\n")


def protocol_family(p: ProtocolInfo) -> Family:
    """A session's family: its neighbor's address family (a hand-written config names its
    protocols as it likes), else ecmptui's own naming (peer1_v6)."""
    try:
        return Family.of(p.neighbor_address or "")
    except ValueError:
        return peer_family(p.name)


def peer_protocol(i: int, family: Family) -> str:
    """The node's BGP protocol for its i-th peer (1-based) in `family`: peer1, peer1_v6."""
    return f"{PEER_PROTOCOL_PREFIX}{i}" + ("" if family is Family.IPV4 else "_v6")


def peer_family(protocol: str) -> Family:
    """The family of one of the node's BGP protocols, by its name."""
    return Family.IPV6 if protocol.endswith("_v6") else Family.IPV4


def _quote(text: str) -> str:
    """A BIRD string literal. Rejects characters BIRD strings cannot hold safely."""
    if any(c in text for c in '"\\\n\r') or not text.isprintable():
        raise ValueError("value contains characters that cannot appear in a BIRD string")
    return f'"{text}"'


def _peer_routes(part: FamilyBgp) -> list[str]:
    """A family's static routes to its multihop peers, also put in the kernel."""
    f, sfx, nb = part.family, part.suffix, part.neighbor
    out: list[str] = []
    if nb.multihop:
        if not part.gateway:
            raise ValueError("multihop peers need a gateway for their static routes")
        gw = ipaddress.ip_address(part.gateway)
        if gw.version != f.value:
            raise ValueError(f"the {f.api} peers' gateway {gw} is not an {f.api} address")
        out.append(f"protocol static peer_routes{sfx} {{\n  {f.channel};")
        out += [f"  route {p}/{f.host_bits} via {gw};" for p in nb.peer_ips]
        out.append("}\n")
        # the kernel must know the peers too, or the multihop TCP session cannot reach them
        out.append(
            f"protocol kernel {{\n  {f.channel} {{\n    import none;\n"
            f'    export filter {{ if proto = "peer_routes{sfx}" then accept; reject; }};\n'
            "  };\n}\n"
        )
    return out


def _sessions(part: FamilyBgp, spec: NodeBgpSpec) -> list[str]:
    """A family's export filter, template and one BGP session per peer."""
    f, sfx, nb = part.family, part.suffix, part.neighbor
    accept = export_line(part.eip)
    if f in spec.withdrawn_families:
        accept = WITHDRAWN_MARK + accept.lstrip()
    out = [
        f"filter eip{sfx}_out {{",
        accept,
        "  reject;",
        "}",
        "",
        f"template bgp metal{sfx} {{",
        f"  local {nb.customer_ip} as {nb.customer_as};",
        "  multihop 5;" if nb.multihop else "  direct;",
        spec.timers.render(),
    ]
    if nb.md5_password:
        out.append(f"  password {_quote(nb.md5_password)};")
    if spec.bfd:
        out.append("  bfd on;")
    out += [f"  {f.channel} {{", "    import none;", f"    export filter eip{sfx}_out;", "  };"]
    out += ["}", ""]
    for i, peer in enumerate(nb.peer_ips, start=1):
        out.append(
            f"protocol bgp {peer_protocol(i, f)} from metal{sfx} "
            f"{{ neighbor {peer} as {nb.peer_as}; }}"
        )
    return out


def render_node_config(spec: NodeBgpSpec) -> str:
    """bird.conf for a server announcing its EIP of every family to every peer of that
    family's neighbor entry."""
    ipaddress.IPv4Address(spec.router_id)
    if not spec.families:
        raise ValueError("nothing to announce: no address family")
    for part in spec.families:
        if Family.of(part.eip) != part.neighbor.family:
            raise ValueError(f"EIP {part.eip} and its neighbor record differ in family")
    parts = sorted(spec.families, key=lambda p: p.family)
    eips = " and ".join(f"{p.eip}/{p.family.host_bits}" for p in parts)
    out = [f"# rendered by ecmptui: announce {eips} to AS {parts[0].neighbor.peer_as}"]
    if spec.log_file:
        out.append(f"log {_quote(spec.log_file)} all;")
    out += [
        'timeformat protocol "%F %T.%3f";',
        'timeformat log "%F %T.%3f";',
        # explicit: BIRD would otherwise pick the highest address, which is the shared EIP
        f"router id {spec.router_id};",
        "debug protocols { states };",
        "",
        "protocol device { scan time 10; }",
        "",
        # one protocol for every family: disabling it withdraws them all, BGP stays up
        f"protocol direct {EIP_PROTOCOL} {{",
        f"  disabled {'no' if spec.announce else 'yes'};",
        *(f"  {p.family.channel};" for p in parts),
        '  interface "lo";',
        "}",
        "",
    ]
    for part in parts:
        out += _peer_routes(part)
    if spec.bfd:  # one BFD protocol serves the sessions of both families
        out.append(spec.bfd_timers.render("*"))
    for i, part in enumerate(parts):
        out += ([""] if i else []) + _sessions(part, spec)
    return "\n".join(out) + "\n"


# -- parsing -----------------------------------------------------------------------------


@dataclass
class ChannelInfo:
    name: str
    state: str = ""
    imported: int = 0
    exported: int = 0
    preferred: int = 0
    filtered: int = 0


@dataclass
class ProtocolInfo:
    """One protocol of `birdc show protocols [all]`."""

    name: str
    proto: str
    table: str
    state: str
    since: str
    info: str
    bgp_state: str | None = None
    neighbor_address: str | None = None
    neighbor_as: int | None = None
    local_as: int | None = None
    neighbor_id: str | None = None
    hold_timer: str | None = None
    keepalive_timer: str | None = None
    last_error: str | None = None
    channels: list[ChannelInfo] = field(default_factory=list)

    @property
    def established(self) -> bool:
        return (self.bgp_state or self.info.split(" ")[0]) == "Established"

    @property
    def routes_exported(self) -> int:
        return sum(c.exported for c in self.channels)

    @property
    def routes_imported(self) -> int:
        return sum(c.imported for c in self.channels)


_HEADER_RE = re.compile(r"^Name\s+Proto\s+Table\s+State\s+Since\s+Info\s*$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME_RE = re.compile(r"^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$")
_ROUTES_RE = re.compile(
    r"^(\d+) imported,(?: (\d+) filtered,)? (\d+) exported(?:, (\d+) preferred)?$"
)
_STATES = {"up", "down", "start", "stop", "flush"}


def _split_protocol_line(line: str) -> ProtocolInfo:
    tokens = line.split()
    if len(tokens) < 5 or tokens[3] not in _STATES:
        raise BirdParseError(f"not a protocol line: {line[:80]!r}")
    rest = tokens[4:]
    if len(rest) >= 2 and _DATE_RE.match(rest[0]) and _TIME_RE.match(rest[1]):
        since, info = f"{rest[0]} {rest[1]}", rest[2:]
    else:
        since, info = rest[0], rest[1:]
    return ProtocolInfo(
        name=tokens[0],
        proto=tokens[1],
        table=tokens[2],
        state=tokens[3],
        since=since,
        info=" ".join(info),
    )


def _apply_detail(proto: ProtocolInfo, key: str, value: str) -> None:
    chan = proto.channels[-1] if proto.channels else None
    if key == "BGP state":
        proto.bgp_state = value
    elif key == "Neighbor address":
        proto.neighbor_address = value
    elif key == "Neighbor AS" and value.isdigit():
        proto.neighbor_as = int(value)
    elif key == "Local AS" and value.isdigit():
        proto.local_as = int(value)
    elif key == "Neighbor ID":
        proto.neighbor_id = value
    elif key == "Hold timer":
        proto.hold_timer = value
    elif key == "Keepalive timer":
        proto.keepalive_timer = value
    elif key == "Last error":
        proto.last_error = value
    elif chan is not None and key == "State":
        chan.state = value
    elif chan is not None and key == "Routes":
        m = _ROUTES_RE.match(value)
        if m:
            chan.imported = int(m.group(1))
            chan.filtered = int(m.group(2) or 0)
            chan.exported = int(m.group(3))
            chan.preferred = int(m.group(4) or 0)


def parse_protocols(text: str) -> list[ProtocolInfo]:
    """Parse `birdc show protocols` or `show protocols all` output.

    Raises BirdParseError (only) when the text is not such output.
    """
    if not isinstance(text, str):
        raise BirdParseError("birdc output must be text")
    lines = [ln.rstrip() for ln in text.splitlines()]
    try:
        start = next(i for i, ln in enumerate(lines) if _HEADER_RE.match(ln))
    except StopIteration as exc:
        first = next((ln for ln in lines if ln.strip()), "")
        raise BirdParseError(f"no protocol table in birdc output: {first[:80]!r}") from exc
    protocols: list[ProtocolInfo] = []
    for line in lines[start + 1 :]:
        if not line.strip():
            continue
        if not line[0].isspace():
            protocols.append(_split_protocol_line(line))
            continue
        if not protocols:
            raise BirdParseError("detail line before any protocol")
        stripped = line.strip()
        if stripped.startswith("Channel "):
            protocols[-1].channels.append(ChannelInfo(name=stripped.split(None, 1)[1]))
            continue
        key, sep, value = stripped.partition(":")
        if sep:
            _apply_detail(protocols[-1], key.strip(), value.strip())
    return protocols


def parse_route_prefixes(text: str) -> list[str]:
    """Prefixes listed by `birdc show route ...` (one per route block, in order, deduplicated)."""
    seen: list[str] = []
    for line in text.splitlines():
        if not line or line[0].isspace():
            continue
        token = line.split()[0]
        try:
            net = ipaddress.ip_network(token, strict=False)
        except ValueError:
            continue
        if str(net) not in seen and "/" in token:
            seen.append(str(net))
    return seen


_ROUTE_SOURCE = re.compile(
    r"\b(?:unicast|blackhole|unreachable|prohibit)\s+\[([A-Za-z0-9_]+)[\s\]]"
)


def parse_route_protocols(text: str) -> list[str]:
    """The protocols that gave the routes listed by `birdc show route PREFIX [all]`
    (`s1`, `s2`, ...), in order, deduplicated."""
    out: list[str] = []
    for name in _ROUTE_SOURCE.findall(text):
        if name not in out:
            out.append(name)
    return out


BFD_ROW = re.compile(r"^([0-9A-Fa-f:.]+)\s+\S+\s+(\w+)\s")


def parse_bfd_sessions(text: str) -> list[tuple[str, str]]:
    """`birdc show bfd sessions`: (peer address, state: Up, Down, Init, AdminDown), IPv4
    and IPv6 peers alike."""
    out = []
    for line in text.splitlines():
        m = BFD_ROW.match(line.strip())
        if m is None:
            continue
        try:
            ipaddress.ip_address(m.group(1))
        except ValueError:
            continue
        out.append((m.group(1), m.group(2)))
    return out
