"""One server over SSH (asyncssh): BIRD config, the EIP on lo, nginx, and BGP actions.

Every remote command is an argv list joined with shlex: no shell string is ever built from
unquoted input. BIRD configs are checked with `bird -p` on the node before they replace the
old one, which is kept and restored if the reload fails.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

from ecmptui.errors import EcmpError
from ecmptui.family import Family, host_prefix, url_host
from ecmptui.node import bird, nginx
from ecmptui.node.host_key_policy import HostKeyPolicy
from ecmptui.node.remote_shell import RemoteShell, Result, ShellError

log = logging.getLogger(__name__)


class NodeFailure(enum.Enum):
    """Why a node command failed, for callers that act on it (never by matching text)."""

    UNREACHABLE = "unreachable"  # no SSH session, or it broke
    BIRD_DOWN = "bird-down"  # BIRD does not answer on its socket
    COMMAND = "command"  # a command ran and failed
    CONFIG = "config"  # BIRD refused a config (nothing applied)
    INSTALL = "install"  # a package could not be installed


class NodeError(EcmpError):
    """A node could not be reached or refused an action; `reason` says which."""

    def __init__(self, message: str, reason: NodeFailure = NodeFailure.COMMAND) -> None:
        super().__init__(message)
        self.reason = reason


UNREACHABLE, BIRD_DOWN, CONFIG, INSTALL = (
    NodeFailure.UNREACHABLE,
    NodeFailure.BIRD_DOWN,
    NodeFailure.CONFIG,
    NodeFailure.INSTALL,
)


@dataclass(frozen=True)
class Layout:
    """Where a node keeps BIRD and nginx files and which systemd units run them: Debian's
    own places, the same on a lab machine, a Metal server and a server of the user's."""

    bird_conf: str = "/etc/bird/bird.conf"
    bird_socket: str = "/run/bird/bird.ctl"
    nginx_conf: str = "/etc/nginx/conf.d/ecmptui.conf"
    nginx_html: str = "/var/www/ecmptui"
    state_dir: str = "/var/lib/ecmptui"
    eip_protocol: str = bird.EIP_PROTOCOL
    bird_unit: str = "bird"
    nginx_unit: str = "nginx"

    @property
    def withdrawn_flag(self) -> str:
        return f"{self.state_dir}/withdrawn"

    @property
    def withdrawn_families_file(self) -> str:
        """The families the operator withdrew alone (one a line: ipv4, ipv6)."""
        return f"{self.state_dir}/withdrawn-families"


EIP_UNIT = "ecmptui-eip"
EIP_UNIT_FILE = f"/etc/systemd/system/{EIP_UNIT}.service"
# Debian package that provides each program provisioning needs on a node
PACKAGES = {"bird": "bird2", "nginx": "nginx-light", "nft": "nftables"}


def eip_unit(eips: list[str]) -> str:
    """A oneshot unit that puts the EIPs (one per family) on lo at boot, before BIRD and
    nginx start."""
    return (
        "[Unit]\nDescription=ecmptui: the anycast Elastic IP on lo\n"
        "DefaultDependencies=no\nBefore=network.target bird.service nginx.service\n\n"
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
        return cls(name, index, host, layout, conn, shell)

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

    async def install_packages(self, programs: list[str]) -> list[str]:
        """Install the Debian packages for `programs` that are missing (the guide's own
        `apt-get install`); returns the packages installed."""
        missing = [PACKAGES[p] for p in programs if not await self.has_program(p)]
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

    # -- BIRD ----------------------------------------------------------------------------
    def birdc_argv(self, *args: str) -> list[str]:
        return ["birdc", "-s", self.layout.bird_socket, *args]

    async def bfd_sessions(self) -> list[tuple[str, str]]:
        """(peer address, state) of every BFD session BIRD runs (none without BFD)."""
        res = await self.run(*self.birdc_argv("show", "bfd", "sessions"), check=False)
        return bird.parse_bfd_sessions(str(res.stdout)) if res.exit_status == 0 else []

    async def bird_running(self) -> bool:
        res = await self.run(*self.birdc_argv("show", "status"), check=False)
        return res.exit_status == 0 and "Daemon is up" in str(res.stdout)

    async def protocols(self) -> list[bird.ProtocolInfo]:
        res = await self.run(*self.birdc_argv("show", "protocols", "all"), check=False)
        if res.exit_status != 0:
            last = str(res.stdout or res.stderr).strip().splitlines()
            raise NodeError(
                f"{self.name}: BIRD is not running" + (f" ({last[-1]})" if last else ""), BIRD_DOWN
            )
        try:
            return bird.parse_protocols(str(res.stdout))
        except bird.BirdParseError as exc:
            raise NodeError(f"{self.name}: unreadable birdc output: {exc}") from exc

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

    async def apply_bird_config(self, text: str) -> bool:
        """Validate `text` with `bird -p` on the node, then make it live. True if changed."""
        lay = self.layout
        current = await self.read(lay.bird_conf)
        running = await self.bird_running()
        if current == text and running:
            return False
        new, backup = lay.bird_conf + ".new", lay.bird_conf + ".bak"
        await self.write(new, text, "0640", dir_group=True)
        check = await self.run("bird", "-p", "-c", new, check=False)
        if check.exit_status != 0:
            await self.run("rm", "-f", new)
            msg = str(check.stderr or check.stdout).strip().splitlines()
            raise NodeError(
                f"{self.name}: BIRD rejected the new config, nothing applied: "
                f"{msg[-1] if msg else 'bird -p failed'}",
                CONFIG,
            )
        if current is not None:
            await self.run("cp", "-p", lay.bird_conf, backup)
        await self.run("mv", new, lay.bird_conf)
        if not running:
            await self._start_bird()
            return True
        res = await self.run(*self.birdc_argv("configure"), check=False)
        if res.exit_status != 0 or "Reconfigur" not in str(res.stdout):
            if current is not None:
                await self.run("mv", backup, lay.bird_conf)
                await self.run(*self.birdc_argv("configure"), check=False)
            raise NodeError(
                f"{self.name}: BIRD reload failed; previous config restored: "
                f"{str(res.stdout).strip().splitlines()[-1:]}"
            )
        return True

    async def _start_bird(self) -> None:
        unit = self.layout.bird_unit
        await self.systemctl("enable", "--quiet", unit)
        await self.systemctl("restart", unit)
        for _ in range(100):  # bounded: 5 s
            if await self.bird_running():
                return
            await asyncio.sleep(0.05)
        raise NodeError(f"{self.name}: BIRD did not start")

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
    async def withdraw(self, family: Family | None = None) -> None:
        """Stop announcing the EIP (of `family` alone; None: every family); BGP sessions
        stay Established. Survives BIRD restarts (the flag file also tells the health check
        not to announce it again)."""
        if family is not None:
            await self._family_export(family, announce=False)
            return
        await self._set_eip_protocol(enabled=False)  # first: the drain starts at once
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
        await self._set_eip_protocol(enabled=True)

    async def _family_export(self, family: Family, announce: bool) -> None:
        """One family's EIP on or off in its export filter (validated, then reloaded: the
        sessions stay up), and the family noted in (or taken off) the node's list."""
        current = await self.read(self.layout.bird_conf)
        if current is None:
            raise NodeError(f"{self.name}: no BIRD config at {self.layout.bird_conf}")
        eip = await self._eip_of(family, current)
        if not bird.has_family_export(current, eip):
            # a hand-written config: nothing here could narrow it, so nothing is noted either
            raise NodeError(
                f"{self.name}: its BIRD config does not export {eip} as ecmptui renders it; "
                f"{'announce' if announce else 'withdraw'} it there by hand"
            )
        new = bird.set_family_export(current, eip, announce)
        if new != current:
            await self.apply_bird_config(new)
        families = await self.withdrawn_families()
        families = families - {family} if announce else families | {family}
        await self.run("mkdir", "-p", self.layout.state_dir)
        await self.write(
            self.layout.withdrawn_families_file, "".join(f"{f.api}\n" for f in sorted(families))
        )

    async def _eip_of(self, family: Family, config: str) -> str:
        """The node's EIP of `family`: the address of that family on lo that its BIRD
        config (`config`) exports."""
        for prefix in await self.lo_addresses():
            address = prefix.split("/")[0]
            if Family.of(address) is family and address in config:
                return address
        raise NodeError(f"{self.name}: it announces no {family.api} EIP")

    async def _set_eip_protocol(self, enabled: bool) -> None:
        # the live switch first (takes effect in milliseconds), then the file, so that
        # a restart or reconfigure keeps the same state
        verb = "enable" if enabled else "disable"
        res = await self.run(*self.birdc_argv(verb, self.layout.eip_protocol), check=False)
        out = str(res.stdout)
        if res.exit_status != 0 or ("enabled" not in out and "disabled" not in out):
            raise NodeError(
                f"{self.name}: birdc {verb} {self.layout.eip_protocol} failed: "
                f"{out.strip().splitlines()[-1:] or res.stderr}"
            )
        current = await self.read(self.layout.bird_conf)
        want = f"  disabled {'no' if enabled else 'yes'};"
        other = f"  disabled {'yes' if enabled else 'no'};"
        if current is not None and other in current:
            await self.write(
                self.layout.bird_conf, current.replace(other, want, 1), "0640", dir_group=True
            )

    async def shutdown(self, family: Family | None = None) -> None:
        """Take the BGP sessions (of `family` alone) down (BIRD keeps running)."""
        await self._peers(False, family)

    async def start(self, family: Family | None = None) -> None:
        await self._peers(True, family)

    async def _peers(self, enabled: bool, family: Family | None = None) -> None:
        peers = [
            p.name
            for p in await self.protocols()
            if p.proto == "BGP" and family in (None, bird.protocol_family(p))
        ]
        if not peers:
            which = f"{family.api} " if family else ""
            raise NodeError(f"{self.name}: no {which}BGP protocols in BIRD")
        verb = "enable" if enabled else "disable"
        for p in peers:
            await self.run(*self.birdc_argv(verb, p))
