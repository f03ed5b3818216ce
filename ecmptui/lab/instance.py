"""Names, addresses and paths of one lab instance, derived from its short name.

Everything a lab creates carries its prefix (`<name>-`), so `lab down` can find it again even
when the supervisor died without cleaning up. Two instances (the user's lab and the test suite's)
differ in namespace names, root-namespace link names, state directory and mgmt subnet.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ecmptui.limits import DEFAULT_LAB, MAX_NODES, validate_lab_name

DEFAULT_NAME = DEFAULT_LAB
STATE_ROOT = Path(os.environ.get("ECMPTUI_STATE_ROOT", "/run/ecmptui"))
MAX_SLOTS = 100  # mgmt subnets 198.18.100.0/24 .. 198.18.199.0/24

# Inside the namespaces every instance uses the same plan (namespaces are isolated);
# only the mgmt bridge lives in the root namespace, so its subnet depends on the slot.
CLIENT_ADDR = "198.18.1.2"
CLIENT_GW = "198.18.1.1"
FABRIC_ID = "198.18.1.1"  # the fabric's BIRD router id
ROUTER_ASN = 65530
# The two core routers, as on Metal: their BGP addresses, reached multihop by every server
ROUTERS = ("core1", "core2")
ROUTER_PEER_IPS = {"core1": "169.254.255.1", "core2": "169.254.255.2"}
EIP_POOL = ipaddress.IPv4Network("203.0.113.0/24")
# IPv6 (dual stack), documentation and unique-local prefixes only. The cores answer BGP at
# fc00::e and fc00::f, as Metal's did; the project owns a /56 from which every server's
# public /127 and the IPv6 EIPs (/128s) come.
ROUTER_PEER_IPS6 = {"core1": "fc00::e", "core2": "fc00::f"}
PROJECT_BLOCK6 = ipaddress.IPv6Network("2001:db8:ec:100::/56")
EIP6_POOL = ipaddress.IPv6Network("2001:db8:ec:1ff::/64")  # inside PROJECT_BLOCK6
CLIENT_ADDR6 = "fd00:ec:1::2"
CLIENT_GW6 = "fd00:ec:1::1"
LAB_NET = ipaddress.IPv4Network("198.18.0.0/15")
MAX_VANTAGES = 8  # client sites beside the client (`lab up --vantages N`)


validate_name = validate_lab_name


@dataclass(frozen=True)
class LabInstance:
    """One lab, identified by its short name."""

    name: str = DEFAULT_NAME

    def __post_init__(self) -> None:
        validate_name(self.name)

    # -- names ---------------------------------------------------------------------------
    @property
    def prefix(self) -> str:
        return f"{self.name}-"

    @property
    def fabric_ns(self) -> str:
        """The forwarding fabric: every server's private gateway, the client side, kernel
        ECMP to the EIP (BIRD learns it from both core routers)."""
        return f"{self.name}-fabric"

    def router_ns(self, router: str) -> str:
        return f"{self.name}-{router}"

    @property
    def client_ns(self) -> str:
        return f"{self.name}-client"

    def site_ns(self, k: int) -> str:
        """Vantage site k's namespace: another client, on its own link to the fabric."""
        return f"{self.name}-site{k}"

    def server_ns(self, n: int) -> str:
        return f"{self.name}-srv{n}"

    @property
    def bridge(self) -> str:
        return f"{self.name}-mgmt"

    def mgmt_veth(self, n: int) -> str:
        """Root-namespace end of server n's mgmt link (<= 15 chars)."""
        return f"{self.name}-m{n}"

    def owns_namespace(self, ns: str) -> bool:
        return (
            re.fullmatch(re.escape(self.name) + r"-(fabric|core[12]|client|site\d+|srv\d+)", ns)
            is not None
        )

    def owns_machine(self, name: str) -> bool:
        return (
            re.fullmatch(re.escape(self.name) + r"-(fabric|core[12]|apt|srv\d+)", name) is not None
        )

    @property
    def apt_machine(self) -> str:
        return f"{self.name}-apt"

    @property
    def apt_dir(self) -> Path:
        return self.state_dir / "apt"

    def owns_link(self, link: str) -> bool:
        return re.fullmatch(re.escape(self.name) + r"-(mgmt|m\d+)", link) is not None

    # -- paths ---------------------------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        return STATE_ROOT / self.name

    @property
    def info_file(self) -> Path:
        return self.state_dir / "lab.json"

    @property
    def cloud_file(self) -> Path:
        """The API's objects (devices, EIPs, keys, BGP), for a supervisor that adopts."""
        return self.state_dir / "cloud.json"

    @property
    def token_file(self) -> Path:
        return self.state_dir / "token"

    @property
    def ca_file(self) -> Path:
        return self.state_dir / "tls" / "ca.pem"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    @property
    def boot_faults_file(self) -> Path:
        """Host names whose machines fail to boot while listed (rehearsing a bad server)."""
        return self.state_dir / "boot-faults"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "daemon.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "daemon.log"

    def router_dir(self, router: str) -> Path:
        return self.state_dir / router

    @property
    def fabric_dir(self) -> Path:
        return self.state_dir / "fabric"

    def server_dir(self, n: int) -> Path:
        return self.state_dir / f"srv{n}"

    # -- machines ------------------------------------------------------------------------
    def server_machine(self, n: int) -> str:
        """Host-unique name of server n's machine (its cgroup is named after it)."""
        return self.server_ns(n)

    def router_machine(self, router: str) -> str:
        return self.router_ns(router)

    @property
    def fabric_machine(self) -> str:
        return self.fabric_ns


def router_link(router: str) -> tuple[str, str]:
    """(fabric side, router side) of the fabric <-> router link, a /30 each."""
    k = ROUTERS.index(router)
    base = ipaddress.IPv4Address("198.18.2.0") + 4 * k
    return str(base + 1), str(base + 2)


def site_net(k: int) -> tuple[ipaddress.IPv4Interface, ipaddress.IPv4Interface]:
    """(fabric side, site side) of vantage site k's link: 198.18.(40+k).0/24."""
    if not 1 <= k <= MAX_VANTAGES:
        raise ValueError(f"vantage {k} out of range")
    return ipaddress.IPv4Interface(f"198.18.{40 + k}.1/24"), ipaddress.IPv4Interface(
        f"198.18.{40 + k}.2/24"
    )


def site_net6(k: int) -> tuple[ipaddress.IPv6Interface, ipaddress.IPv6Interface]:
    """(fabric side, site side) of vantage site k's IPv6 link: fd00:ec:2:k::/64."""
    return ipaddress.IPv6Interface(f"fd00:ec:2:{k}::1/64"), ipaddress.IPv6Interface(
        f"fd00:ec:2:{k}::2/64"
    )


def link_net(n: int) -> ipaddress.IPv4Network:
    """The fabric<->server n link (the server's private network): .1 is the private gateway
    in the fabric, .2 the server."""
    if not 1 <= n <= MAX_NODES:
        raise ValueError(f"server index {n} out of range")
    return ipaddress.IPv4Network(f"198.18.{10 + n}.0/24")


def router_link_addr(n: int) -> str:
    return str(link_net(n).network_address + 1)


def server_link_addr(n: int) -> str:
    return str(link_net(n).network_address + 2)


def mgmt_net(slot: int) -> ipaddress.IPv4Network:
    if not 0 <= slot < MAX_SLOTS:
        raise ValueError(f"mgmt slot {slot} out of range")
    return ipaddress.IPv4Network(f"198.18.{100 + slot}.0/24")


def mgmt_gateway(slot: int) -> str:
    return str(mgmt_net(slot).network_address + 1)


def mgmt_addr(slot: int, n: int) -> str:
    return str(mgmt_net(slot).network_address + 10 + n)


def router_link6(router: str) -> tuple[str, str]:
    """(fabric side, router side) of the fabric <-> router link in IPv6, a /64 each."""
    k = ROUTERS.index(router)
    return f"fd00:ec:f{k + 1}::1", f"fd00:ec:f{k + 1}::2"


def _server_pair6(n: int) -> int:
    if not 1 <= n <= MAX_NODES:
        raise ValueError(f"server index {n} out of range")
    return int(PROJECT_BLOCK6.network_address) + 2 * n


def router_link_addr6(n: int) -> str:
    """Server n's IPv6 gateway in the fabric: the even end of its public /127."""
    return str(ipaddress.IPv6Address(_server_pair6(n)))


def server_link_addr6(n: int) -> str:
    """Server n's public IPv6 address (the odd end of its /127, as Metal assigned them)."""
    return str(ipaddress.IPv6Address(_server_pair6(n) + 1))
