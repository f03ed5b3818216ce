"""One snapshot of the deployment: BIRD on every node, the API's sessions, the lab router."""

from __future__ import annotations

import enum
import time
from dataclasses import asdict, dataclass, field, fields

from ecmptui.jsonish import JsonObject


class Observed(enum.StrEnum):
    """ecmptui's own word for a node's BGP state when BIRD's cannot be read (BIRD's own
    states, "Established", "Active", ..., are its words and stay plain strings)."""

    WAITING = "waiting"  # before its first answer (the dashboard's poller)
    UNREACHABLE = "unreachable"  # no SSH session
    UNRESPONSIVE = "unresponsive"  # no answer within the poll's deadline (BIRD or SSH hung)
    NOT_RUNNING = "not running"  # BIRD does not answer on its socket
    DEVICE_FAILED = "device failed"  # the provider says the machine failed
    NO_BGP = "no BGP protocol"  # BIRD runs but has no BGP session configured


WAITING = Observed.WAITING


@dataclass
class PeerStatus:
    protocol: str
    bgp_state: str
    since: str
    neighbor: str | None
    routes_imported: int
    routes_exported: int
    hold_timer: str | None
    last_error: str | None
    family: int = 4  # the session's address family (4, 6)


@dataclass
class HealthStatus:
    """The node's health check as its state file says, plus whether its unit runs."""

    state: str  # up | down | stopped
    alive: bool = True
    since: float | str | None = None
    transitions: int = 0
    last_error: str | None = None
    interval_ms: int | None = None
    timeout_ms: int | None = None
    rise: int | None = None
    fall: int | None = None
    updated: float | None = None

    @classmethod
    def from_state(cls, data: JsonObject | None) -> HealthStatus | None:
        if not data or "state" not in data:
            return None
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def label(self) -> str:
        """One word: up, down, stopped, or "not running"."""
        return self.state if self.alive else "not running"


@dataclass
class NodeStatus:
    name: str
    index: int
    device_id: str
    mgmt_address: str
    bgp_state: str = "unknown"  # the best peer's state (BIRD's word), or an `Observed`
    since: str = ""
    routes_exported: int = 0
    hold_timer: str | None = None
    last_error: str | None = None
    api_status: str = "unknown"
    withdrawn: bool = False
    withdrawn_families: list[int] = field(default_factory=list)  # withdrawn alone (4, 6)
    eip_on_lo: bool | None = None
    health: HealthStatus | None = None
    peers: list[PeerStatus] = field(default_factory=list)
    error: str | None = None
    updated: float | None = None  # wall time of the node's last answer (None: never)
    bfd: str | None = None  # "2/2 up": BFD sessions up of those BIRD runs (None: no BFD)
    faults: list[str] = field(default_factory=list)  # what the node carries (its fault file)
    device_state: str = "active"  # the API's device state (failed: it never came up)
    device_error: str | None = None  # why the device failed, as the API says
    daemon: str | None = None  # the routing daemon it runs: bird, frr (None: not asked)

    @property
    def answering(self) -> bool:
        """Whether the last poll got an answer (else: unreachable or unresponsive)."""
        return self.bgp_state not in (Observed.UNREACHABLE, Observed.UNRESPONSIVE)

    @property
    def established(self) -> bool:
        """At least one session is Established (the node can serve)."""
        return self.bgp_state == "Established"

    @property
    def peers_up(self) -> int:
        """Sessions Established, of `len(peers)`."""
        return sum(p.bgp_state == "Established" for p in self.peers)

    @property
    def announcing_to(self) -> int:
        """Routers that have the node's route now: Established sessions it exports to."""
        return (
            0
            if self.withdrawn
            else sum(p.bgp_state == "Established" and p.routes_exported > 0 for p in self.peers)
        )

    @property
    def announced(self) -> bool:
        """Some router has the node's route (not announced only when none has)."""
        return self.announcing_to > 0

    def announced_in(self, family: int) -> bool:
        """Some router has the node's route of `family` (4, 6)."""
        return not self.withdrawn and any(
            p.family == family and p.bgp_state == "Established" and p.routes_exported > 0
            for p in self.peers
        )


@dataclass
class CoreView:
    """One core router as the lab sees it: its BIRD, and the nodes it learned the EIP from."""

    name: str
    bgp_address: str
    bird: str  # running | frozen | not running | down
    learned_from: list[str] = field(default_factory=list)
    learned_from6: list[str] = field(default_factory=list)  # the IPv6 EIP's, dual stack
    bgp_address6: str | None = None  # where it answers IPv6 BGP (the lab: fc00::e, fc00::f)

    def address_for(self, family: int) -> str | None:
        return self.bgp_address if family == 4 else self.bgp_address6

    def learned_for(self, family: int) -> list[str]:
        return self.learned_from if family == 4 else self.learned_from6


@dataclass
class RouterStatus:
    """The lab's routing for the EIP: the fabric's FIB next hops (and whose they are), and
    each core router's view."""

    nexthops: list[str]
    nodes: list[str]
    cores: list[CoreView] = field(default_factory=list)
    mode: str = "hash"  # the fabric's ECMP: hash or resilient
    buckets: dict[str, int] = field(default_factory=dict)  # resilient: per node
    agent: str | None = None  # resilient: "ok" or what is wrong with the ECMP agent
    nexthops6: list[str] = field(default_factory=list)  # the IPv6 EIP's, dual stack
    nodes6: list[str] = field(default_factory=list)
    buckets6: dict[str, int] = field(default_factory=dict)

    def nexthops_for(self, family: int) -> list[str]:
        return self.nexthops if family == 4 else self.nexthops6

    def buckets_for(self, family: int) -> dict[str, int]:
        return self.buckets if family == 4 else self.buckets6

    def nodes_for(self, family: int) -> list[str]:
        """The nodes the fabric forwards the EIP of `family` to."""
        return self.nodes if family == 4 else self.nodes6


@dataclass
class DeploymentStatus:
    """One snapshot of the whole deployment (`status --json` is `to_json()` of it)."""

    target: str
    eip: str | None
    nodes: list[NodeStatus]
    router: RouterStatus | None = None
    updated: float | None = None  # wall time this snapshot was put together
    error: str | None = None  # the inventory could not be read: this is the last one
    eip6: str | None = None  # the IPv6 EIP of a dual-stack (or IPv6) deployment

    @property
    def eips(self) -> dict[int, str]:
        """The EIP per family (4, 6) the deployment serves."""
        return {f: a for f, a in ((4, self.eip), (6, self.eip6)) if a}

    @property
    def first_eip(self) -> str | None:
        """The EIP probed unless asked otherwise: IPv4's, or IPv6's on an IPv6-only one."""
        return next(iter(self.eips.values()), None)

    def oldest(self) -> float | None:
        """The wall time of the stalest node's last answer (what "updated" means)."""
        times = [n.updated for n in self.nodes]
        if not times:
            return self.updated
        return None if None in times else min(t for t in times if t is not None)

    def to_json(self) -> JsonObject:
        return asdict(self)

    @classmethod
    def from_json(cls, d: JsonObject) -> DeploymentStatus:
        """The inverse of `to_json` (a served session gets its status this way)."""

        def node(n: JsonObject) -> NodeStatus:
            health = HealthStatus.from_state(n.get("health"))
            peers = [PeerStatus(**p) for p in n.get("peers") or []]
            return NodeStatus(**{**n, "health": health, "peers": peers})

        r = d.get("router")
        router = (
            None
            if r is None
            else RouterStatus(
                r["nexthops"],
                r["nodes"],
                [CoreView(**c) for c in r.get("cores") or []],
                r.get("mode", "hash"),
                dict(r.get("buckets") or {}),
                r.get("agent"),
                list(r.get("nexthops6") or []),
                list(r.get("nodes6") or []),
                dict(r.get("buckets6") or {}),
            )
        )
        return cls(
            d["target"],
            d.get("eip"),
            [node(n) for n in d.get("nodes") or []],
            router,
            d.get("updated"),
            d.get("error"),
            d.get("eip6"),
        )

    def node(self, name: str) -> NodeStatus | None:
        return next((n for n in self.nodes if n.name == name), None)

    def fabric_problems(self, family: int | None = None) -> list[str]:
        """Where the router's view contradicts the nodes': a node that says it announces
        but is not among the next hops (of `family`; None: every family), or an ECMP agent
        that reports an error."""
        if self.router is None:
            return []
        out = []
        if self.router.agent not in (None, "ok"):
            out.append(f"fabric: {self.router.agent}")
        for family in [f for f in self.eips if family in (None, f)]:
            forwarded = self.router.nodes_for(family)
            missing = [
                n.name for n in self.nodes if n.announced_in(family) and n.name not in forwarded
            ]
            if missing:
                what = "the EIP" if len(self.eips) == 1 else f"the IPv{family} EIP"
                out.append(
                    f"the fabric does not forward to {', '.join(missing)} although "
                    f"{'it announces' if len(missing) == 1 else 'they announce'} {what}"
                )
        return out


class EventKind(enum.StrEnum):
    """What a status change is about."""

    NODE = "node"  # a node first seen (its first answer)
    BGP = "bgp"  # a BGP session's state
    EIP = "eip"  # announced / withdrawn by the operator
    API = "api"  # the provider API's view of the sessions
    HEALTH = "health"  # the node's own health check
    ROUTER = "router"  # the fabric's next hops for the EIP


@dataclass(frozen=True)
class StatusEvent:
    """One change between two snapshots. `old`/`new` are the values before and after
    (strings, for the log)."""

    kind: EventKind
    node: str | None
    old: str | None
    new: str
    why: str | None = None
    at: float | None = None  # wall time it happened (node-side where known)
    peer: str | None = None  # bgp: the session's router (name, or its address)


def diff(old: DeploymentStatus | None, new: DeploymentStatus) -> list[StatusEvent]:
    """What changed from `old` to `new` (everything is new when `old` is None)."""
    events: list[StatusEvent] = []
    before = {n.name: n for n in old.nodes} if old is not None else {}
    routers = {c.bgp_address: c.name for c in new.router.cores} if new.router else {}
    for n in new.nodes:
        prev = before.get(n.name)
        seen = n.updated or new.updated
        if n.bgp_state == WAITING:  # a placeholder until the node's first answer: no news
            continue
        if prev is None or prev.bgp_state == WAITING:
            events.append(StatusEvent(EventKind.NODE, n.name, None, n.bgp_state, at=seen))
            continue
        # both answered: one event per session that changed, naming its router
        old_peers = {p.protocol: p for p in prev.peers}
        sessions = [
            StatusEvent(
                EventKind.BGP,
                n.name,
                q.bgp_state,
                p.bgp_state,
                p.last_error,
                at=_when(p.since, prev.updated, seen),
                peer=routers.get(p.neighbor or "", p.neighbor or p.protocol),
            )
            for p in n.peers
            if (q := old_peers.get(p.protocol)) is not None and q.bgp_state != p.bgp_state
        ]
        events += sessions
        if not sessions and prev.bgp_state != n.bgp_state:
            # BIRD knows when its session changed; an unanswered poll is known when seen
            at = _when(n.since, prev.updated, seen) if n.answering else seen
            events.append(
                StatusEvent(EventKind.BGP, n.name, prev.bgp_state, n.bgp_state, n.last_error, at=at)
            )
        was = (prev.withdrawn, prev.withdrawn_families)
        if was != (n.withdrawn, n.withdrawn_families):
            events.append(
                StatusEvent(
                    EventKind.EIP,
                    n.name,
                    eip_label(prev.withdrawn, prev.withdrawn_families),
                    eip_label(n.withdrawn, n.withdrawn_families),
                    at=seen,
                )
            )
        if prev.api_status != n.api_status:
            events.append(
                StatusEvent(EventKind.API, n.name, prev.api_status, n.api_status, at=seen)
            )
        h_old = prev.health.state if prev.health else None
        h_new = n.health.state if n.health else None
        if h_new is not None and h_old != h_new:
            since = n.health.since if n.health else None
            events.append(
                StatusEvent(
                    EventKind.HEALTH,
                    n.name,
                    h_old,
                    h_new,
                    at=since if isinstance(since, float) else seen,
                )
            )
    if old is not None and new.router is not None:
        old_nodes = old.router.nodes if old.router is not None else None
        if old_nodes != new.router.nodes:
            events.append(
                StatusEvent(
                    EventKind.ROUTER,
                    None,
                    ", ".join(old_nodes or []) or None,
                    ", ".join(new.router.nodes) or "none",
                    at=new.updated,
                )
            )
    return events


def _when(since: str, before: float | None, seen: float | None) -> float | None:
    """When a session changed: BIRD's time for it, unless that is implausibly old."""
    at = bird_time(since)
    if at is None or (before is not None and at < before - 60):
        return seen
    return at


def bird_time(since: str) -> float | None:
    """BIRD's `since` ("2026-11-26 18:32:23.101", the node's local time) as a wall time."""
    try:
        day, clock = since.split(" ")
        whole, _, frac = clock.partition(".")
        t = time.mktime(time.strptime(f"{day} {whole}", "%Y-%m-%d %H:%M:%S"))
        return t + (float(f"0.{frac}") if frac else 0.0)
    except (ValueError, OverflowError):
        return None


def eip_label(withdrawn: bool, families: list[int] | None = None) -> str:
    """announced, withdrawn, or which families the operator withdrew alone."""
    if withdrawn:
        return "withdrawn"
    if families:
        return "withdrawn " + " ".join(f"IPv{f}" for f in families)
    return "announced"
