"""The lab as a target: its Metal-compatible API (through `ApiTarget`), and its routers as
the deployment port's `RouterView` (the fabric's FIB, the cores' BGP, ECMP weights, faults)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ecmptui.deployment.inventory import ApiTarget
from ecmptui.deployment.port import Capabilities, TargetKind, Timing, lab_label
from ecmptui.deployment.status import CoreView, RouterStatus
from ecmptui.errors import EcmpError
from ecmptui.family import Family, host_prefix
from ecmptui.lab import control, router
from ecmptui.lab.fibwatch import FibWatch
from ecmptui.lab.instance import LabInstance
from ecmptui.node.host_key_policy import HostKeyPolicy

if TYPE_CHECKING:
    from ecmptui.deployment.metal import ApiEndpoint
    from ecmptui.deployment.records import Inventory


def server_protocol(private_address: str, family: Family = Family.IPV4) -> str:
    """The name of a server's session on the lab's cores: `sN` (IPv6: `sN_6`) for the server
    whose private address is 198.18.(10+N).x (the lab's cloud configures the cores so)."""
    return router.session_protocol(int(private_address.split(".")[2]) - 10, family)


class LabRouters:
    """The lab's two core routers and its fabric, as the deployment port sees routers."""

    def __init__(self, lab: LabInstance) -> None:
        self.lab = lab

    def names(self) -> list[str]:
        return list(router.ROUTERS)

    def next_hops(self, prefix: str) -> list[str]:
        hops, _ = router.fib_view(self.lab, prefix)
        return hops

    def ecmp_mode(self) -> str:
        return router.ecmp_mode(self.lab)

    def status(self, inv: Inventory) -> RouterStatus:
        mode = self.ecmp_mode()
        hops, held = (
            router.fib_view(self.lab, f"{inv.eip}/32", buckets=mode == "resilient")
            if inv.eip
            else ([], {})
        )
        hops6, held6 = (
            router.fib_view(self.lab, host_prefix(inv.eip6), buckets=mode == "resilient")
            if inv.eip6
            else ([], {})
        )
        by_addr = {n.private_address: n.name for n in inv.nodes}
        by_addr.update({n.public_ipv6: n.name for n in inv.nodes if n.public_ipv6})
        by_protocol = {}
        for n in inv.nodes:
            if n.private_address:
                for family in Family:
                    by_protocol[server_protocol(n.private_address, family)] = n.name

        def learned(core: str, eip: str | None) -> list[str]:
            found = router.learned_from(self.lab, core, eip) if eip else []
            return [by_protocol.get(p, p) for p in found]

        cores = [
            CoreView(
                name,
                router.ROUTER_PEER_IPS[name],
                router.core(self.lab, name).state(),
                learned(name, inv.eip),
                learned(name, inv.eip6),
                router.ROUTER_PEER_IPS6[name],
            )
            for name in router.ROUTERS
        ]
        buckets = {by_addr.get(gw, gw): n for gw, n in held.items()}
        return RouterStatus(
            hops,
            [by_addr.get(h, h) for h in hops],
            cores,
            mode,
            buckets,
            router.agent_status(self.lab),
            hops6,
            [by_addr.get(h, h) for h in hops6],
            {by_addr.get(gw, gw): n for gw, n in held6.items()},
        )

    def set_weight(self, gateway: str, weight: int | None) -> None:
        router.set_weight(self.lab, gateway, weight)

    def kill_bird(self, core: str) -> None:
        router.kill_bird(self.lab, core)

    def freeze_bird(self, core: str) -> None:
        router.freeze_bird(self.lab, core)

    def isolate(self, core: str) -> None:
        router.isolate(self.lab, core)

    def restore(self, core: str) -> list[str]:
        return router.restore(self.lab, core)

    def fib_watch(self, eip: str) -> FibWatch:
        return FibWatch(self.lab.fabric_ns, eip)


class LabTarget(ApiTarget):
    """The embedded lab: a Metal-compatible API on this machine, whose machines and routers
    the lab owns."""

    kind = TargetKind.LAB
    caps = Capabilities(faults=True, router_view=True, api=True, read_only_default=False)
    default_families = "dual"  # the lab's fabric and cores speak both families
    timing = Timing(poll=0.1, active_timeout=60.0, verify_timeout=20.0)

    def label(self) -> str:
        return lab_label(self.settings.lab)

    def lab(self) -> LabInstance:
        return LabInstance(self.settings.lab)

    def lab_up(self) -> bool:
        return control.read_info(self.lab()) is not None

    def start_lab(self, progress: Callable[[str], None] | None = None) -> str:
        info, _ = control.up(self.lab(), progress=progress)
        return f"lab {self.settings.lab} is up at {info.endpoint}"

    def endpoint(self) -> ApiEndpoint:
        from ecmptui.deployment.metal import ApiEndpoint

        info = control.require_info(self.lab())
        return ApiEndpoint(
            info.endpoint,
            info.project_id,
            info.token(),
            info.ca_file,
            info.known_hosts,
            self.settings.metal.timeout,
        )

    def host_key_policy(self, endpoint: ApiEndpoint) -> HostKeyPolicy:
        # the lab publishes every machine's host key: nothing else is accepted
        return HostKeyPolicy("strict", Path(endpoint.known_hosts))

    def probe_netns(self) -> str:
        return self.lab().client_ns  # the EIP is routed only there

    def vantage_netns(self, vantage: str) -> str | None:
        """A site of `lab up --vantages N` (site1, ...): its namespace, which must exist."""
        m = re.fullmatch(r"site(\d+)", vantage)
        if m is None:
            return None
        ns = self.lab().site_ns(int(m.group(1)))
        if not os.path.exists(f"/run/netns/{ns}"):
            raise EcmpError(
                f"--vantage {vantage}: lab {self.lab().name!r} has no such site "
                "(`ecmptui lab up --vantages N` adds them)"
            )
        return ns

    def routers(self) -> LabRouters:
        return LabRouters(self.lab())
