"""One server over SSH (asyncssh): its routing daemon (BIRD or FRR, through the
`routing.RoutingDaemon` port), the EIP on lo, nginx, and BGP actions.

Every remote command is an argv list joined with shlex: no shell string is ever built from
unquoted input. Routing configs are checked by the daemon on the node before they replace
the old one, which is kept and restored if the reload fails.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from pathlib import Path
from typing import Any

import asyncssh

from ecmptui.errors import EcmpError
from ecmptui.family import Family, host_prefix, url_host
from ecmptui.node import bird, nginx
from ecmptui.node.daemon_names import DAEMON_NAMES, DEFAULT_DAEMON
from ecmptui.node.daemons import daemon_for, detect_script
from ecmptui.node.failure import (
    CONFIG,
    DAEMON_DOWN,
    INSTALL,
    UNREACHABLE,
    NodeError,
    NodeFailure,
)
from ecmptui.node.host_key_policy import HostKeyPolicy
from ecmptui.node.layout import Layout
from ecmptui.node.remote_shell import RemoteShell, Result, ShellError
from ecmptui.node.routing import RoutingDaemon, Session

log = logging.getLogger(__name__)


# re-exported: callers import them from here
__all__ = [
    "CONFIG",
    "DAEMON_DOWN",
    "INSTALL",
    "UNREACHABLE",
    "HostKeyPolicy",
    "Layout",
    "NodeError",
    "NodeFailure",
]


EIP_UNIT = "ecmptui-eip"
EIP_UNIT_FILE = f"/etc/systemd/system/{EIP_UNIT}.service"
# Debian packages that provide the programs provisioning needs on a node beside its
# routing daemon's (each daemon adapter names its own)
PACKAGES = {"nginx": ("nginx-light",), "nft": ("nftables",)}


def eip_unit(eips: list[str]) -> str:
    """A oneshot unit that puts the EIPs (one per family) on lo at boot, before BIRD and
    nginx start."""
    return (
        "[Unit]\nDescription=ecmptui: the anycast Elastic IP on lo\n"
        "DefaultDependencies=no\nBefore=network.target bird.service frr.service nginx.service\n\n"
        "[Service]\nType=oneshot\nRemainAfterExit=yes\n"
        + "".join(f"ExecStart=ip addr replace {host_prefix(e)} dev lo\n" for e in eips)
        + "\n[Install]\nWantedBy=multi-user.target\n"
    )


def _pinned(path: Path, host: str) -> list[str]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and host in parts[0].split(","):
            out.append(f"{parts[1]} {parts[2]}")
    return out


def forget_pinned(path: Path, host: str) -> bool:
    """Drop the pinned keys of `host` (its server was deleted: the address may come back
    with another server and key). Returns whether any was recorded."""
    try:
        lines = path.read_text().splitlines(keepends=True)
    except OSError:
        return False
    keep = [ln for ln in lines if not (ln.split() and host in ln.split()[0].split(","))]
    if len(keep) == len(lines):
        return False
    tmp = path.with_name(path.name + ".new")
    tmp.write_text("".join(keep))
    tmp.replace(path)
    return True


async def _known_hosts_for(policy: HostKeyPolicy, host: str, port: int, timeout: float) -> Any:
    if policy.mode == "strict":
        return str(policy.known_hosts)
    pinned = _pinned(policy.known_hosts, host)
    if not pinned:
        key = await asyncio.wait_for(asyncssh.get_server_host_key(host, port), timeout)
        if key is None:
            raise NodeError(f"{host}: no host key offered")
        line = key.export_public_key().decode().strip()
        policy.known_hosts.parent.mkdir(parents=True, exist_ok=True)
        with policy.known_hosts.open("a") as fh:
            fh.write(f"{host if port == 22 else f'[{host}]:{port}'} {line}\n")
        pinned = [line]
    return ([asyncssh.import_public_key(k) for k in pinned], [], [])


def _require_files(who: str, key: Path, policy: HostKeyPolicy) -> None:
    """The key and a strict known-hosts file exist (else SSH says "refused" or "unknown
    host", which hides the missing file)."""
    if not key.is_file():
        raise NodeError(f"{who}: SSH key {key} does not exist", UNREACHABLE)
    if policy.mode == "strict" and not policy.known_hosts.is_file():
        raise NodeError(
            f"{who}: known hosts file {policy.known_hosts} does not exist (host key policy strict)",
            UNREACHABLE,
        )


class Node:
    """An open SSH connection to one node plus its layout."""

    def __init__(
        self,
        name: str,
        index: int,
        host: str,
        layout: Layout,
        conn: asyncssh.SSHClientConnection,
        shell: RemoteShell,
    ) -> None:
        self.name, self.index, self.host, self.layout = name, index, host, layout
        self.conn, self.shell = conn, shell
        self.daemon: RoutingDaemon = daemon_for(layout.daemon or DEFAULT_DAEMON, layout)

    @classmethod
    async def connect(
        cls,
        name: str,
        index: int,
        host: str,
        layout: Layout,
        *,
        user: str,
        key: Path,
        policy: HostKeyPolicy,
        port: int = 22,
        timeout: float = 10.0,
    ) -> Node:
        log.debug("connecting to %s (%s:%d) as %s", name, host, port, user)
        _require_files(f"{name} ({host})", key, policy)
        try:
            known = await _known_hosts_for(policy, host, port, timeout)
            conn = await asyncio.wait_for(
                asyncssh.connect(
                    host,
                    port=port,
                    username=user,
                    client_keys=[str(key)],
                    known_hosts=known,
                    agent_path=None,
                    config=None,
                ),
                timeout,
            )
            shell = await asyncio.wait_for(RemoteShell.open(conn), timeout)
            node = cls(name, index, host, layout, conn, shell)
            if layout.daemon is None:
                await asyncio.wait_for(node.detect_daemon(), timeout)
        except asyncssh.HostKeyNotVerifiable as exc:
            where = policy.known_hosts
            if not _pinned(where, host if port == 22 else f"[{host}]:{port}"):
                raise NodeError(
                    f"{name} ({host}): unknown host: no host key for it in "
                    f"{where}; refusing to connect",
                    UNREACHABLE,
                ) from exc
            raise NodeError(
                f"{name} ({host}): host key does not match the one recorded in "
                f"{where}; refusing to connect",
                UNREACHABLE,
            ) from exc
        except asyncssh.PermissionDenied as exc:
            raise NodeError(f"{name} ({host}): SSH key {key} was refused", UNREACHABLE) from exc
        except (TimeoutError, OSError, asyncssh.Error) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise NodeError(
                f"{name} ({host}): SSH connection failed: {reason}", UNREACHABLE
            ) from exc
        return node

    async def detect_daemon(self) -> RoutingDaemon:
        """Which daemon the node runs (see `daemons.detect_script`), remembered."""
        res = await self.run("sh", "-c", detect_script(self.layout), check=False)
        name = str(res.stdout).strip()
        if res.exit_status == 0 and name in DAEMON_NAMES:
            self.daemon = daemon_for(name, self.layout)
        return self.daemon

    def use_daemon(self, name: str) -> RoutingDaemon:
        """Talk to `name` from now on (provisioning switched the node to it)."""
        self.daemon = daemon_for(name, self.layout)
        return self.daemon

    @property
    def usable(self) -> bool:
        """Whether the connection can take another command (a cancelled one spoils it)."""
        return self.shell.usable

    async def close(self) -> None:
        self.shell.close()
        self.conn.close()
        await self.conn.wait_closed()

    async def run(
        self, *argv: str, input: str | None = None, check: bool = True, timeout: float = 30.0
    ) -> Result:
        try:
            res = await self.shell.run(argv, input=input, timeout=timeout)
        except ShellError as exc:
            raise NodeError(f"{self.name}: `{argv[0]}` failed: {exc}", UNREACHABLE) from exc
        if check and res.exit_status != 0:
            err = (str(res.stderr or res.stdout or "")).strip().splitlines()
            raise NodeError(
                f"{self.name}: `{' '.join(argv[:3])}` exited {res.exit_status}: "
                f"{err[-1] if err else 'no output'}"
            )
        return res

    async def read(self, path: str) -> str | None:
        res = await self.run("cat", path, check=False)
        return str(res.stdout) if res.exit_status == 0 else None

    async def write(
        self, path: str, text: str, mode: str = "0644", dir_group: bool = False
    ) -> None:
        """Write `path` atomically. `dir_group`: the file gets its directory's group (BIRD
        reads /etc/bird/bird.conf as user bird after dropping root)."""
        await self.run("mkdir", "-p", str(Path(path).parent))
        script = 'umask 077 && cat > "$1.tmp" && chmod "$2" "$1.tmp"'
        if dir_group:
            script += ' && chgrp --reference "$(dirname "$1")" "$1.tmp"'
        await self.run("sh", "-c", script + ' && mv -f "$1.tmp" "$1"', "sh", path, mode, input=text)

    async def systemctl(self, *args: str, check: bool = True) -> Result:
        return await self.run("systemctl", *args, check=check)

    async def unit_active(self, unit: str) -> bool:
        res = await self.systemctl("is-active", "--quiet", unit, check=False)
        return res.exit_status == 0

    async def has_program(self, program: str) -> bool:
        res = await self.run("sh", "-c", 'command -v "$1" >/dev/null', "sh", program, check=False)
        return res.exit_status == 0

    async def install_packages(self, programs: dict[str, tuple[str, ...]]) -> list[str]:
        """Install the Debian packages for `programs` that are missing (the guide's own
        `apt-get install`); returns the packages installed."""
        missing = [
            pkg for p, pkgs in programs.items() if not await self.has_program(p) for pkg in pkgs
        ]
        missing = list(dict.fromkeys(missing))
        if not missing:
            return []
        res = await self.run(
            "env",
            "DEBIAN_FRONTEND=noninteractive",
            "sh",
            "-c",
            'apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@"',
            "sh",
            *missing,
            check=False,
            timeout=600,
        )
        if res.exit_status != 0:
            err = str(res.stderr or res.stdout).strip().splitlines()
            raise NodeError(
                f"{self.name}: installing {', '.join(missing)} failed: "
                f"{err[-1] if err else f'exit {res.exit_status}'}",
                INSTALL,
            )
        return missing

    async def main_pid(self, unit: str) -> int:
        res = await self.systemctl("show", "-p", "MainPID", "--value", unit, check=False)
        text = str(res.stdout).strip()
        return int(text) if text.isdigit() else 0

    async def drop_runtime_dropin(self, path: str) -> None:
        """Remove a runtime drop-in a fault wrote (and let systemd read the units again)."""
        if await self.read(path) is not None:
            await self.run("rm", "-f", path)
            await self.systemctl("daemon-reload")

    # -- the routing daemon --------------------------------------------------------------
    async def bfd_sessions(self) -> list[tuple[str, str]]:
        """(peer address, state) of every BFD session the daemon runs (none without BFD)."""
        return await self.daemon.bfd_peers(self)

    async def daemon_running(self) -> bool:
        return await self.daemon.running(self)

    async def sessions(self) -> list[Session]:
        """Every BGP session as the node's daemon reports it. When the daemon does not
        answer, the node is asked once which daemon it runs now (a rerun of provision may
        have switched it) before that is reported."""
        try:
            return await self.daemon.sessions(self)
        except NodeError as exc:
            if exc.reason is not DAEMON_DOWN or self.layout.daemon is not None:
                raise
            before = self.daemon.name
            if (await self.detect_daemon()).name == before:
                raise
            return await self.daemon.sessions(self)

    async def apply_routing(self, spec: bird.NodeBgpSpec) -> bool:
        """Render the node's config for its daemon, validate it there, then make it live
        (the old one kept and restored if the reload fails). True if anything changed."""
        return await self.daemon.apply(self, self.daemon.render(spec, self.name))

    async def withdrawn(self) -> bool:
        res = await self.run("test", "-e", self.layout.withdrawn_flag, check=False)
        return res.exit_status == 0

    async def withdrawn_families(self) -> set[Family]:
        """The families the operator withdrew alone (`withdraw --family`)."""
        text = await self.read(self.layout.withdrawn_families_file) or ""
        out = set()
        for word in text.split():
            try:
                out.add(Family.parse(word))
            except EcmpError:
                continue  # a line this version does not know: not ours to act on
        return out

    # -- EIP and nginx -------------------------------------------------------------------
    async def ensure_eip(self, eips: list[str]) -> bool:
        """The EIPs on lo now and after every boot (a oneshot unit that runs before BIRD and
        nginx). True if anything changed."""
        unit = eip_unit(eips)
        changed = False
        if await self.read(EIP_UNIT_FILE) != unit:
            await self.write(EIP_UNIT_FILE, unit)
            await self.systemctl("daemon-reload")
            await self.systemctl("enable", "--quiet", EIP_UNIT)
            changed = True
        if changed or await self.missing_eips(eips):
            await self.systemctl("restart", EIP_UNIT)
            changed = True
        return changed

    async def lo_addresses(self) -> list[str]:
        """The addresses on lo, as prefixes (203.0.113.10/32, 2001:db8::10/128): one read."""
        res = await self.run("ip", "-o", "addr", "show", "dev", "lo")
        words = [line.split() for line in str(res.stdout).splitlines()]
        return [w[3] for w in words if len(w) > 3 and w[2] in ("inet", "inet6")]

    async def missing_eips(self, eips: list[str]) -> list[str]:
        """Those of `eips` that are not on lo."""
        on_lo = set(await self.lo_addresses())
        return [e for e in eips if host_prefix(e) not in on_lo]

    async def apply_nginx(self, eips: list[str]) -> bool:
        """nginx answers on the EIPs with the node's page (a conf.d server block bound to
        them, so a default site on *:80 stays as it is). True if anything changed."""
        lay = self.layout
        listen = tuple(f"{url_host(e)}:80" for e in eips)
        conf = nginx.server_block(self.name, lay.nginx_html, listen=listen)
        index = nginx.page(self.index)
        changed = False
        if await self.read(f"{lay.nginx_html}/index.html") != index:
            await self.write(f"{lay.nginx_html}/index.html", index)
            changed = True
        if await self.read(lay.nginx_conf) != conf:
            await self.write(lay.nginx_conf, conf)
            changed = True
        running = await self.nginx_running()
        if running and not changed:
            return False
        await self.run("nginx", "-t", "-q")
        await self.systemctl("enable", "--quiet", lay.nginx_unit)
        await self.systemctl("reload-or-restart", lay.nginx_unit)
        return True

    async def nginx_running(self) -> bool:
        return await self.unit_active(self.layout.nginx_unit)

    # -- actions -------------------------------------------------------------------------
    async def eips_on_lo(self) -> list[str]:
        """The addresses on lo that are not loopback: the EIPs it serves."""
        out = []
        for prefix in await self.lo_addresses():
            address = prefix.split("/")[0]
            if not ipaddress.ip_address(address).is_loopback:
                out.append(address)
        return out

    async def withdraw(self, family: Family | None = None) -> None:
        """Stop announcing the EIP (of `family` alone; None: every family); BGP sessions
        stay Established. Survives daemon restarts (the flag file also tells the health
        check not to announce it again)."""
        if family is not None:
            await self._family_export(family, announce=False)
            return
        # first: the drain starts at once
        await self.daemon.set_announced(self, False, await self.eips_on_lo())
        await self.run("mkdir", "-p", self.layout.state_dir)
        await self.run("touch", self.layout.withdrawn_flag)

    async def announce(self, family: Family | None = None) -> None:
        """Announce the EIP again (of `family` alone; None: every family, also one the
        operator withdrew alone)."""
        if family is not None:
            await self._family_export(family, announce=True)
            return
        for withdrawn in await self.withdrawn_families():
            await self._family_export(withdrawn, announce=True)
        await self.run("rm", "-f", self.layout.withdrawn_flag)
        await self.daemon.set_announced(self, True, await self.eips_on_lo())

    async def _family_export(self, family: Family, announce: bool) -> None:
        """One family's EIP on or off in the daemon's config (validated, then reloaded: the
        sessions stay up), and the family noted in (or taken off) the node's list."""
        daemon = self.daemon
        current = await self.read(daemon.conf_path)
        if current is None:
            raise NodeError(f"{self.name}: no {daemon.label} config at {daemon.conf_path}")
        eip = await self._eip_of(family, current)
        if not daemon.has_family_export(current, eip):
            # a hand-written config: nothing here could narrow it, so nothing is noted either
            raise NodeError(
                f"{self.name}: its {daemon.label} config does not export {eip} in a way "
                f"ecmptui can switch; {'announce' if announce else 'withdraw'} it there by hand"
            )
        new = daemon.set_family_export(current, eip, announce)
        if new != current:
            await daemon.apply(self, new)
        families = await self.withdrawn_families()
        families = families - {family} if announce else families | {family}
        await self.run("mkdir", "-p", self.layout.state_dir)
        await self.write(
            self.layout.withdrawn_families_file, "".join(f"{f.api}\n" for f in sorted(families))
        )

    async def _eip_of(self, family: Family, config: str) -> str:
        """The node's EIP of `family`: the address of that family on lo that its daemon's
        config (`config`) exports."""
        for address in await self.eips_on_lo():
            if Family.of(address) is family and address in config:
                return address
        raise NodeError(f"{self.name}: it announces no {family.api} EIP")

    async def shutdown(self, family: Family | None = None) -> None:
        """Take the BGP sessions (of `family` alone) down (the daemon keeps running)."""
        await self.daemon.set_sessions(self, False, family)

    async def start(self, family: Family | None = None) -> None:
        await self.daemon.set_sessions(self, True, family)
