"""The lab's core router: BIRD (AS 65530) with kernel ECMP, configured from the API's state."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from ecmptui.errors import EcmpError
from ecmptui.lab import fabric, image
from ecmptui.lab.instance import ROUTER_ASN, ROUTER_ID, LabInstance, server_link_addr
from ecmptui.lab.machine import Machine
from ecmptui.node import bird


@dataclass(frozen=True)
class RouterPeer:
    """One BGP session the router accepts: from server n in AS `asn`."""

    n: int
    asn: int
    md5: str | None = None

    @property
    def protocol(self) -> str:
        return f"s{self.n}"


def render_router_config(
    peers: list[RouterPeer], eips: list[str], log_file: str | None = None,
    timers: bird.BgpTimers = bird.BgpTimers(), bfd: bird.BfdTimers = bird.BfdTimers(),
) -> str:
    """bird.conf of the core router: accepts only `eips` (/32) from customers, ECMP to kernel."""
    nets = ", ".join(f"{e}/32" for e in sorted(eips))
    accept = f"  if net ~ [ {nets} ] then accept;\n" if eips else ""
    out = [f'log "{log_file}" all;' if log_file else "",
           'timeformat protocol "%F %T.%3f";',
           'timeformat log "%F %T.%3f";',
           f"router id {ROUTER_ID};",
           "debug protocols { states };",
           "protocol device { scan time 10; }",
           "protocol kernel {",
           "  ipv4 {",
           "    import none;",
           "    export filter { if source = RTS_BGP then accept; reject; };",
           "  };",
           "  merge paths on;   # ECMP: all equal-best BGP paths become one multipath route",
           "  learn off;",
           "}",
           bfd.render("rt-s*"),
           "filter customer_in {",
           accept + "  reject;",
           "}",
           "template bgp customer {",
           f"  local as {ROUTER_ASN};",
           "  direct;",
           timers.render(),
           # BFD only takes effect for servers that run it too (provisioned with --bfd)
           "  bfd on;",
           "  ipv4 { import filter customer_in; export none; };",
           "}"]
    for p in sorted(peers, key=lambda p: p.n):
        pw = f" password \"{p.md5}\";" if p.md5 else ""
        out.append(
            f"protocol bgp {p.protocol} from customer "
            f"{{ neighbor {server_link_addr(p.n)} as {p.asn};{pw} }}"
        )
    return "\n".join(line for line in out if line != "") + "\n"


class CoreRouter:
    """The core router: a machine from the lab image in the core namespace, whose BIRD is
    run by systemd and reconfigured from the API's state (validated with `bird -p` first)."""

    CONF = "/etc/bird/bird.conf"

    def __init__(self, lab: LabInstance) -> None:
        self.lab = lab
        self.machine = Machine(lab.router_machine, lab.core_ns, lab.router_dir,
                               image.image("server").rootfs)

    def birdc(self, *args: str) -> str:
        try:
            return self.machine.run("birdc", *args, timeout=5).stdout
        except EcmpError as exc:
            raise fabric.FabricError(str(exc)) from exc

    def _write_validated(self, text: str) -> None:
        new = self.CONF + ".new"
        self.machine.put(new, text, 0o640, owner="bird")
        check = self.machine.run("bird", "-p", "-c", new, check=False)
        if check.returncode != 0:
            self.machine.run("rm", "-f", new, check=False)
            msg = (check.stderr or check.stdout).strip().splitlines()
            raise EcmpError(f"core router config rejected by bird -p: {msg[-1:] or check}")
        self.machine.run("mv", new, self.CONF)

    def start(self, peers: list[RouterPeer], eips: list[str]) -> None:
        m = self.machine
        m.put("/etc/hostname", "core\n")
        m.put(self.CONF, render_router_config(peers, eips), 0o640, owner="bird")
        m.enable("bird.service")
        m.mask("ssh.service")  # nobody logs in to the router
        m.boot()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if m.run("birdc", "show", "status", check=False, timeout=5).returncode == 0:
                return
            time.sleep(0.02)
        raise EcmpError("core router BIRD did not come up within 10 s")

    def stop(self) -> None:
        self.machine.remove()

    def reconfigure(self, peers: list[RouterPeer], eips: list[str]) -> None:
        self._write_validated(render_router_config(peers, eips))
        out = self.birdc("configure")
        if "Reconfigured" not in out and "Reconfiguration in progress" not in out:
            raise EcmpError(f"core router reconfigure failed: {out.strip().splitlines()[-1:]}")

    def protocols(self) -> dict[str, bird.ProtocolInfo]:
        try:
            return {p.name: p for p in bird.parse_protocols(self.birdc("show", "protocols", "all"))}
        except (fabric.FabricError, bird.BirdParseError):
            return {}

    def learned_routes(self, protocol: str) -> list[str]:
        try:
            out = self.birdc("show", "route", "protocol", protocol)
        except fabric.FabricError:
            return []
        return bird.parse_route_prefixes(out)

    def nexthops(self, prefix: str) -> list[str]:
        """Gateways of the kernel FIB route for `prefix` in the core namespace, right now."""
        out = fabric.run(["ip", "-j", "-n", self.lab.core_ns, "route", "show", prefix], check=False)
        try:
            routes = json.loads(out or "[]")
        except json.JSONDecodeError:
            return []
        hops: list[str] = []
        for r in routes:
            if "gateway" in r:
                hops.append(r["gateway"])
            hops += [h["gateway"] for h in r.get("nexthops", []) if "gateway" in h]
        return sorted(hops)
