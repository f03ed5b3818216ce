"""Network namespaces, veths, addresses and routes of a lab instance.

Only the mgmt bridge and the root ends of the servers' mgmt veths live in the root namespace;
its routing table gets nothing but the bridge's connected route. Every other link is created
from inside a lab namespace.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from ecmptui.errors import EcmpError
from ecmptui.lab import machine
from ecmptui.lab.instance import (
    CLIENT_ADDR,
    CLIENT_ADDR6,
    CLIENT_GW,
    CLIENT_GW6,
    ROUTER_PEER_IPS,
    ROUTER_PEER_IPS6,
    ROUTERS,
    LabInstance,
    mgmt_addr,
    mgmt_gateway,
    mgmt_net,
    router_link,
    router_link6,
    router_link_addr,
    router_link_addr6,
    server_link_addr,
    server_link_addr6,
    site_net,
    site_net6,
)


class FabricError(EcmpError):
    """A command that builds or removes the fabric failed."""


def run(args: Sequence[str], *, check: bool = True, timeout: float = 10.0) -> str:
    """Run a command without a shell; return stdout, raise FabricError with stderr on failure."""
    try:
        proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as exc:
        raise FabricError(f"{args[0]}: not found") from exc
    except subprocess.TimeoutExpired as exc:
        raise FabricError(f"{' '.join(args)}: timed out after {timeout:.0f} s") from exc
    if check and proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise FabricError(f"{' '.join(args)}: {msg[-1] if msg else f'exit {proc.returncode}'}")
    return proc.stdout


def ip(*args: str, ns: str | None = None, check: bool = True) -> str:
    return run(["ip", *(["-n", ns] if ns else []), *args], check=check)


def addr6(address: str, dev: str, ns: str) -> None:
    """An IPv6 address usable at once (no duplicate address detection: the lab's links
    have two ends, both ours)."""
    ip("-6", "addr", "add", address, "dev", dev, "nodad", ns=ns)


def in_ns(ns: str, *args: str) -> list[str]:
    """argv that runs `args` inside namespace `ns`."""
    return ["ip", "netns", "exec", ns, *args]


def sysctl(ns: str, key: str, value: str) -> None:
    run(in_ns(ns, "sysctl", "-q", "-w", f"{key}={value}"))


def list_namespaces() -> list[str]:
    out = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def list_root_links() -> list[str]:
    out = run(["ip", "-o", "link", "show"], check=False)
    names = []
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


def namespace_pids(ns: str) -> list[int]:
    out = run(["ip", "netns", "pids", ns], check=False)
    return [int(p) for p in out.split() if p.isdigit()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_pids(pids: Sequence[int], grace: float = 0.5) -> None:
    """SIGTERM, then SIGKILL whatever is still alive after `grace` seconds (bounded)."""
    own = os.getpid()
    pids = [p for p in pids if p != own]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)  # a frozen (SIGSTOPped) daemon cannot act on SIGTERM
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_pid_alive(p) for p in pids):
        time.sleep(0.02)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# -- building ----------------------------------------------------------------------------


def set_l4_hash(ns: str) -> None:
    """Hash each connection's addresses and ports, as a hardware router does.

    Without L4 hashing every connection from the one client goes to the same server. Policy 1
    is not enough here: for a packet that carries its socket's flow hash (the client is in
    this kernel, and a veth keeps the hash), it uses that random value instead of the ports,
    and TCP draws a new one after a retransmission timeout, so a connection could change
    server where a real router would keep it. Policy 3 with these fields (source and
    destination address, protocol, ports) always hashes the packet itself; kernels before
    5.12 lack it and get policy 1."""
    for family in ("ipv4", "ipv6"):
        try:
            sysctl(ns, f"net.{family}.fib_multipath_hash_policy", "3")
            sysctl(ns, f"net.{family}.fib_multipath_hash_fields", "0x0037")
        except FabricError:
            sysctl(ns, f"net.{family}.fib_multipath_hash_policy", "1")


def build_base(lab: LabInstance, slot: int) -> None:
    """Fabric, client and core router namespaces, their links, and the root mgmt bridge.

    The fabric forwards (client -> servers, kernel ECMP); the core routers are BGP speakers
    beside it, reached at 169.254.255.1/.2 through the fabric, like Metal's."""
    fab, client = lab.fabric_ns, lab.client_ns
    for ns in (fab, client, *(lab.router_ns(r) for r in ROUTERS)):
        run(["ip", "netns", "add", ns])
        ip("link", "set", "lo", "up", ns=ns)
    sysctl(fab, "net.ipv4.ip_forward", "1")
    sysctl(fab, "net.ipv6.conf.all.forwarding", "1")
    set_l4_hash(fab)
    ip("link", "add", "rt-client", "type", "veth", "peer", "name", "eth0", "netns", client, ns=fab)
    ip("addr", "add", f"{CLIENT_GW}/24", "dev", "rt-client", ns=fab)
    ip("link", "set", "rt-client", "up", ns=fab)
    ip("addr", "add", f"{CLIENT_ADDR}/24", "dev", "eth0", ns=client)
    ip("link", "set", "eth0", "up", ns=client)
    ip("route", "add", "default", "via", CLIENT_GW, ns=client)
    addr6(f"{CLIENT_GW6}/64", "rt-client", fab)
    addr6(f"{CLIENT_ADDR6}/64", "eth0", client)
    ip("-6", "route", "add", "default", "via", CLIENT_GW6, ns=client)
    for router in ROUTERS:
        rns, (fab_side, router_side) = lab.router_ns(router), router_link(router)
        link = f"rt-{router}"
        ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", rns, ns=fab)
        ip("addr", "add", f"{fab_side}/30", "dev", link, ns=fab)
        ip("link", "set", link, "up", ns=fab)
        ip("addr", "add", f"{router_side}/30", "dev", "eth0", ns=rns)
        ip("link", "set", "eth0", "up", ns=rns)
        ip("addr", "add", f"{ROUTER_PEER_IPS[router]}/32", "dev", "lo", ns=rns)
        ip("route", "add", "default", "via", fab_side, ns=rns)
        # the servers reach the router's BGP address through the fabric
        ip("route", "add", f"{ROUTER_PEER_IPS[router]}/32", "via", router_side, ns=fab)
        fab6, router6 = router_link6(router)
        addr6(f"{fab6}/64", link, fab)
        addr6(f"{router6}/64", "eth0", rns)
        addr6(f"{ROUTER_PEER_IPS6[router]}/128", "lo", rns)
        ip("-6", "route", "add", "default", "via", fab6, ns=rns)
        ip("-6", "route", "add", f"{ROUTER_PEER_IPS6[router]}/128", "via", router6, ns=fab)

    net = mgmt_net(slot)
    ip("link", "add", lab.bridge, "type", "bridge")
    ip("addr", "add", f"{mgmt_gateway(slot)}/{net.prefixlen}", "dev", lab.bridge)
    ip("link", "set", lab.bridge, "up")


def add_site(lab: LabInstance, k: int) -> None:
    """Vantage site k: a client namespace of its own on its own fabric link (another
    site's view of the same anycast EIP). Made whole or not at all."""
    ns, link = lab.site_ns(k), f"rt-site{k}"
    fab_side, site_side = site_net(k)
    fab6, site6 = site_net6(k)
    run(["ip", "netns", "add", ns])
    try:
        ip("link", "set", "lo", "up", ns=ns)
        ip(
            "link",
            "add",
            link,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ns,
            ns=lab.fabric_ns,
        )
        ip("addr", "add", str(fab_side), "dev", link, ns=lab.fabric_ns)
        ip("link", "set", link, "up", ns=lab.fabric_ns)
        ip("addr", "add", str(site_side), "dev", "eth0", ns=ns)
        ip("link", "set", "eth0", "up", ns=ns)
        ip("route", "add", "default", "via", str(fab_side.ip), ns=ns)
        addr6(str(fab6), link, lab.fabric_ns)
        addr6(str(site6), "eth0", ns)
        ip("-6", "route", "add", "default", "via", str(fab6.ip), ns=ns)
    except FabricError:
        remove_site(lab, k)
        raise


def remove_site(lab: LabInstance, k: int) -> None:
    ip("link", "del", f"rt-site{k}", ns=lab.fabric_ns, check=False)
    ns = lab.site_ns(k)
    if ns in list_namespaces():
        kill_pids(namespace_pids(ns))
        run(["ip", "netns", "del", ns], check=False)


def add_server(lab: LabInstance, n: int, slot: int) -> None:
    """Server namespace n: its private network to the fabric and a mgmt link to the bridge."""
    ns, fab = lab.server_ns(n), lab.fabric_ns
    run(["ip", "netns", "add", ns])
    ip("link", "set", "lo", "up", ns=ns)
    rt_if = f"rt-s{n}"
    ip("link", "add", rt_if, "type", "veth", "peer", "name", "eth0", "netns", ns, ns=fab)
    ip("addr", "add", f"{router_link_addr(n)}/24", "dev", rt_if, ns=fab)
    ip("link", "set", rt_if, "up", ns=fab)
    ip("addr", "add", f"{server_link_addr(n)}/24", "dev", "eth0", ns=ns)
    ip("link", "set", "eth0", "up", ns=ns)
    # The server's own default route (inside its namespace): its private gateway.
    ip("route", "add", "default", "via", router_link_addr(n), ns=ns)
    # and its public IPv6 /127, as Metal gave every server one
    addr6(f"{router_link_addr6(n)}/127", rt_if, fab)
    addr6(f"{server_link_addr6(n)}/127", "eth0", ns)
    ip("-6", "route", "add", "default", "via", router_link_addr6(n), ns=ns)

    veth = lab.mgmt_veth(n)
    # A fixed MAC per (slot, n): a server re-created with the same number must not be
    # unreachable until the root namespace's stale ARP entry for its address expires.
    mac = f"02:ec:{slot:02x}:00:00:{n:02x}"
    ip("neigh", "flush", "to", mgmt_addr(slot, n), check=False)
    ip("link", "add", veth, "type", "veth", "peer", "name", "mgmt0", "address", mac, "netns", ns)
    ip("link", "set", veth, "master", lab.bridge)
    ip("link", "set", veth, "up")
    ip("addr", "add", f"{mgmt_addr(slot, n)}/{mgmt_net(slot).prefixlen}", "dev", "mgmt0", ns=ns)
    ip("link", "set", "mgmt0", "up", ns=ns)


def remove_server(lab: LabInstance, n: int) -> None:
    """Stop everything running in server n's namespace and delete it with its links.

    The veths are deleted explicitly first: the kernel tears a deleted namespace down
    asynchronously, and a new server n created right after would find the old links."""
    ns = lab.server_ns(n)
    ip("link", "del", lab.mgmt_veth(n), check=False)
    ip("link", "del", f"rt-s{n}", ns=lab.fabric_ns, check=False)
    if ns in list_namespaces():
        kill_pids(namespace_pids(ns))
        run(["ip", "netns", "del", ns], check=False)


def present(lab: LabInstance) -> tuple[list[str], list[str]]:
    """The namespaces and root links of this instance that exist now."""
    return (
        [ns for ns in list_namespaces() if lab.owns_namespace(ns)],
        [link for link in list_root_links() if lab.owns_link(link)],
    )


def machine_cgroups(lab: LabInstance) -> list[str]:
    """Cgroups of this instance's machines that exist now (processes may still be in them)."""
    return [str(p) for p in machine.leftover_cgroups(lab.prefix) if lab.owns_machine(p.name)]


def teardown(lab: LabInstance) -> None:
    """Remove every machine, namespace and root link of this instance, killing what runs
    inside. Machines go first: killing a machine's init takes its whole PID namespace and
    its mounts with it."""
    for cg in machine_cgroups(lab):
        machine.kill_cgroup(Path(cg))
    machine.remove_parent_if_empty()
    namespaces, _ = present(lab)
    pids: list[int] = []
    for ns in namespaces:
        pids += namespace_pids(ns)
    kill_pids(pids)
    for ns in namespaces:
        run(["ip", "netns", "del", ns], check=False)
    for link in present(lab)[1]:
        ip("link", "del", link, check=False)
