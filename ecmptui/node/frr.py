"""FRR 8: config rendering for a node and reading of `vtysh ... json`. Pure functions only.

A rendered frr.conf announces each family's EIP with `network EIP/len` under that family's
address family (BGP checks the route exists: the EIP on lo) and lets nothing else out
(`ecmptui-out` route-maps), accepts nothing in, reaches Metal's multihop peers through static
routes via the family's gateway, and runs BFD with a profile of the lab's timers. Withdrawing
(the node, or one family) comments the `network` line out; the same works on a hand-written
config that announces with `network`, whatever else it calls things.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from ecmptui.family import Family
from ecmptui.node.bird import FamilyBgp, NodeBgpSpec
from ecmptui.node.routing import Session

BFD_PROFILE = "ecmptui"
# a `network` line withdrawn by the operator (the node, or its family alone)
WITHDRAWN_MARK = "! withdrawn by the operator: "
_AF = {Family.IPV4: "ipv4 unicast", Family.IPV6: "ipv6 unicast"}
_AF_JSON = {"ipv4Unicast": Family.IPV4, "ipv6Unicast": Family.IPV6}


class FrrParseError(ValueError):
    """vtysh output that does not have the expected shape."""


def _word(text: str) -> str:
    """A value FRR reads as one word (a password): printable, no white space."""
    if not text or not text.isprintable() or any(c.isspace() for c in text):
        raise ValueError("value contains characters that cannot appear in an FRR word")
    return text


def group(part: FamilyBgp) -> str:
    """The peer-group of a family's neighbors: metal, metal6 (as BIRD's templates)."""
    return f"metal{part.suffix}"


def network_line(eip: str) -> str:
    return f"network {eip}/{Family.of(eip).host_bits}"


def _static_routes(part: FamilyBgp) -> list[str]:
    nb = part.neighbor
    if not nb.multihop:
        return []
    if not part.gateway:
        raise ValueError("multihop peers need a gateway for their static routes")
    if Family.of(part.gateway) is not part.family:
        raise ValueError(
            f"the {part.family.api} peers' gateway {part.gateway} is not an "
            f"{part.family.api} address"
        )
    kw = "ip" if part.family is Family.IPV4 else "ipv6"
    return [f"{kw} route {p}/{part.family.host_bits} {part.gateway}" for p in nb.peer_ips]


def _policy(part: FamilyBgp) -> list[str]:
    sfx, f = part.suffix, part.family
    kw = "ip" if f is Family.IPV4 else "ipv6"
    return [
        f"{kw} prefix-list ecmptui-eip{sfx} seq 10 permit {part.eip}/{f.host_bits}",
        "!",
        f"route-map ecmptui-out{sfx} permit 10",
        f" match {kw} address prefix-list ecmptui-eip{sfx}",
        "exit",
        "!",
    ]


def _group_lines(part: FamilyBgp, spec: NodeBgpSpec) -> list[str]:
    g, nb, t = group(part), part.neighbor, spec.timers
    out = [f" neighbor {g} peer-group", f" neighbor {g} remote-as {nb.peer_as}"]
    if spec.bfd:
        out += [f" neighbor {g} bfd", f" neighbor {g} bfd profile {BFD_PROFILE}"]
    if nb.multihop:
        # bgpd gives its BFD sessions a minimum TTL of 256 - hops: BIRD sends multihop BFD
        # with the system's default TTL (64), which any lower count would drop
        out.append(f" neighbor {g} ebgp-multihop 255")
    if nb.md5_password:
        out.append(f" neighbor {g} password {_word(nb.md5_password)}")
    out += [
        f" neighbor {g} update-source {nb.customer_ip}",
        f" neighbor {g} advertisement-interval 0",
        f" neighbor {g} timers connect {t.connect_retry}",
    ]
    return out


def _address_family(part: FamilyBgp, spec: NodeBgpSpec) -> list[str]:
    g, sfx = group(part), part.suffix
    announced = spec.announce and part.family not in spec.withdrawn_families
    net = network_line(part.eip)
    return [
        " !",
        f" address-family {_AF[part.family]}",
        f"  {net}" if announced else f"  {WITHDRAWN_MARK}{net}",
        f"  neighbor {g} activate",
        f"  neighbor {g} route-map ecmptui-in in",
        f"  neighbor {g} route-map ecmptui-out{sfx} out",
        " exit-address-family",
    ]


def render_node_config(spec: NodeBgpSpec, hostname: str) -> str:
    """frr.conf for a server announcing its EIP of every family to every peer of that
    family's neighbor record (integrated config: one file for bgpd, staticd, bfdd)."""
    if not spec.families:
        raise ValueError("nothing to announce: no address family")
    for part in spec.families:
        if Family.of(part.eip) != part.neighbor.family:
            raise ValueError(f"EIP {part.eip} and its neighbor record differ in family")
    _word(hostname)
    parts = sorted(spec.families, key=lambda p: p.family)
    asns = {p.neighbor.customer_as for p in parts}
    if len(asns) != 1:
        raise ValueError("the families' neighbor records name different customer ASNs")
    eips = " and ".join(f"{p.eip}/{p.family.host_bits}" for p in parts)
    t = spec.timers
    out = [
        f"! rendered by ecmptui: announce {eips} to AS {parts[0].neighbor.peer_as}",
        "frr defaults traditional",
        f"hostname {hostname}",
        "log syslog informational",
        "service integrated-vtysh-config",
        # a server, not a router: FRR would otherwise turn forwarding on when it reloads
        "no ip forwarding",
        "no ipv6 forwarding",
        "!",
    ]
    out += [line for p in parts for line in _static_routes(p)] + ["!"]
    for p in parts:
        out += _policy(p)
    out += ["route-map ecmptui-in deny 10", "exit", "!"]
    out += [
        f"router bgp {asns.pop()}",
        f" bgp router-id {spec.router_id}",
        " no bgp default ipv4-unicast",
        # no graceful restart: a router would keep forwarding to a node whose bgpd died (or
        # whose link went silent) as to one that restarts; BIRD's sessions drop at once
        " bgp graceful-restart-disable",
        f" timers bgp {t.keepalive} {t.hold}",
    ]
    for p in parts:
        out += _group_lines(p, spec)
    for p in parts:
        out += [f" neighbor {peer} peer-group {group(p)}" for peer in p.neighbor.peer_ips]
    for p in parts:
        out += _address_family(p, spec)
    out += ["exit", "!"]
    if spec.bfd:
        b = spec.bfd_timers
        out += [
            "bfd",
            f" profile {BFD_PROFILE}",
            f"  receive-interval {b.min_rx_ms}",
            f"  transmit-interval {b.min_tx_ms}",
        ]
        if b.multiplier != 3:  # FRR's default: the running config would not show it
            out.append(f"  detect-multiplier {b.multiplier}")
        out += [" exit", "exit", "!"]
    return "\n".join(out) + "\n"


# -- reading a config (rendered or hand-written) -----------------------------------------

_ROUTER_BGP = re.compile(r"^router bgp (\d+)\s*$", re.M)


def local_as(config: str) -> int | None:
    """The AS of the default instance's `router bgp`."""
    m = _ROUTER_BGP.search(config)
    return int(m.group(1)) if m else None


def _network_re(eip: str, withdrawn: bool) -> re.Pattern[str]:
    mark = re.escape(WITHDRAWN_MARK) if withdrawn else ""
    return re.compile(
        rf"^(?P<indent>[ \t]*){mark}(?P<line>network {re.escape(eip)}/\d+(?:[ \t]+\S.*)?)$",
        re.M,
    )


def has_network(config: str, eip: str) -> bool:
    """Whether `config` announces `eip` with a `network` line (announced or withdrawn)."""
    return any(_network_re(eip, w).search(config) for w in (False, True))


def set_network(config: str, eip: str, announce: bool) -> str:
    """`config` with the `network` line(s) of `eip` on or commented out (the rest of the
    line, a route-map for instance, is kept)."""
    if announce:
        return _network_re(eip, True).sub(r"\g<indent>\g<line>", config)
    return _network_re(eip, False).sub(rf"\g<indent>{WITHDRAWN_MARK}\g<line>", config)


def announced_networks(config: str) -> list[tuple[Family, str]]:
    """(family, the `network ...` line) of every network announced in `config` (rendered
    or hand-written), in order."""
    out = []
    for m in re.finditer(r"^[ \t]*(network (\S+?)/\d+(?:[ \t]+\S.*)?)$", config, re.M):
        try:
            out.append((Family.of(m.group(2)), m.group(1).rstrip()))
        except ValueError:
            continue
    return out


def all_networks(config: str) -> list[tuple[Family, str]]:
    """Every `network` line of `config`, announced or withdrawn by the operator."""
    return announced_networks(config.replace(WITHDRAWN_MARK, ""))


def network_eip(line: str) -> str:
    """The address of a `network ADDRESS/LEN ...` line."""
    return line.split()[1].split("/")[0]


def eip_networks(config: str, eips: list[str]) -> list[tuple[Family, str]]:
    """The `network` lines of `config` (announced or withdrawn) that announce `eips`: what
    a switch of the EIPs acts on, and nothing else the node announces."""
    return [(f, line) for f, line in all_networks(config) if network_eip(line) in eips]


def network_argv(asn: int, family: Family, line: str, announce: bool) -> tuple[str, ...]:
    """vtysh argv that adds (or removes) one `network` line in the running config (bgpd
    alone: vtysh would wait on any other daemon that does not answer)."""
    return (
        "vtysh",
        "-d",
        "bgpd",
        "-c",
        "configure terminal",
        "-c",
        f"router bgp {asn}",
        "-c",
        f"address-family {_AF[family]}",
        "-c",
        line if announce else f"no {line}",
    )


def neighbor_argv(asn: int, neighbors: list[str], enabled: bool) -> tuple[str, ...]:
    """vtysh argv that shuts down (or starts) the given neighbors."""
    argv: list[str] = ["vtysh", "-d", "bgpd", "-c", "configure terminal", "-c", f"router bgp {asn}"]
    for n in neighbors:
        argv += ["-c", f"{'no ' if enabled else ''}neighbor {n} shutdown"]
    return tuple(argv)


def reload_leftovers(test_output: str) -> list[str]:
    """The lines `frr-reload.py --test` would still delete or add (none: in sync)."""
    out, inside = [], False
    for line in test_output.splitlines():
        if line.startswith("Lines To "):
            inside = True
        elif inside and line.strip() and not set(line.strip()) <= {"="}:
            out.append(line.strip())
    return out


def dryrun_complaint(output: str) -> str:
    """The line of `vtysh --dryrun` output that says what is wrong (it names the line)."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    return next((ln for ln in lines if ln.startswith("line ")), lines[-1] if lines else "")


# -- reading vtysh json -----------------------------------------------------------------


def _load(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        first = text.strip().splitlines()[:1]
        raise FrrParseError(f"{what} is not JSON: {first[0][:80] if first else 'empty'}") from exc


def since_text(at: float) -> str:
    """A wall time as BIRD words a protocol's `since` (local time, milliseconds)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) + f".{int(at % 1 * 1000):03d}"


def _since(d: dict[str, Any], state: str, now: float) -> str:
    """When the session last changed: up for bgpTimerUpMsec, or reset lastResetTimerMsecs
    ago (FRR words both as ages)."""
    key = "bgpTimerUpMsec" if state == "Established" else "lastResetTimerMsecs"
    age = d.get(key)
    return since_text(now - age / 1000) if isinstance(age, int) else ""


def _hold(d: dict[str, Any]) -> str | None:
    """The hold timer as BIRD words it: seconds left/hold time ("2.345/3")."""
    hold, last = d.get("bgpTimerHoldTimeMsecs"), d.get("bgpTimerLastRead")
    if not isinstance(hold, int) or not isinstance(last, int) or d.get("bgpState") != "Established":
        return None
    return f"{max(hold - last, 0) / 1000:.3f}/{hold / 1000:g}"


def parse_sessions(summary_json: str, neighbors_json: str, now: float) -> list[Session]:
    """Sessions from `show bgp summary json` (families, routes sent and received) and `show
    bgp neighbors json` (state detail: uptime, hold time, the last reset), read at `now`."""
    summary = _load(summary_json, "show bgp summary json")
    detail = _load(neighbors_json, "show bgp neighbors json")
    if not isinstance(summary, dict) or not isinstance(detail, dict):
        raise FrrParseError("vtysh json is not an object")
    out: list[Session] = []
    for key, family in _AF_JSON.items():
        peers = (summary.get(key) or {}).get("peers") or {}
        for addr, p in peers.items():
            d = detail.get(addr) or {}
            state = str(d.get("bgpState") or p.get("state") or "?")
            if p.get("peerState") == "Admin" or "Admin" in str(p.get("state", "")):
                state = "Idle (Admin)"
            reset = d.get("lastResetDueTo")
            out.append(
                Session(
                    name=addr,
                    family=family,
                    neighbor=addr,
                    state=state,
                    since=_since(d, state, now),
                    routes_imported=int(p.get("pfxRcd") or 0),
                    routes_exported=int(p.get("pfxSnt") or 0),
                    hold_timer=_hold(d),
                    last_error=str(reset) if reset and state != "Established" else None,
                )
            )
    return out


_BFD_STATES = {"up": "Up", "down": "Down", "init": "Init", "shutdown": "AdminDown"}


def parse_bfd_peers(text: str) -> list[tuple[str, str]]:
    """`show bfd peers json`: (peer address, state as BIRD words it: Up, Down, ...)."""
    data = _load(text, "show bfd peers json")
    if not isinstance(data, list):
        raise FrrParseError("show bfd peers json is not a list")
    return [
        (str(p.get("peer")), _BFD_STATES.get(str(p.get("status")), str(p.get("status"))))
        for p in data
        if isinstance(p, dict)
    ]
