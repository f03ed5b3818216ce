"""The routing-daemon port: what ecmptui asks of the BGP daemon on a node, whichever it is.

A node runs one daemon (BIRD or FRR). The node layer (`server.Node`) talks to it only through
`RoutingDaemon`: render the node's config, validate it before it replaces the running one,
apply it without dropping healthy sessions, read sessions and BFD, switch the EIP's
announcement (the whole node, or one family), shut down and start sessions, and name the
processes a fault breaks. The adapters are `bird_daemon.BirdDaemon` and
`frr_daemon.FrrDaemon`; `daemons.daemon_for` picks one.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

from ecmptui.family import Family
from ecmptui.node.failure import CONFIG, NodeError
from ecmptui.waits import Deadline

if TYPE_CHECKING:
    from ecmptui.node.bird import NodeBgpSpec
    from ecmptui.node.layout import Layout
    from ecmptui.node.remote_shell import Result


class NodeShell(Protocol):
    """What a daemon adapter needs of the node it runs on (`server.Node` is one): its name,
    and commands and files over its SSH session."""

    name: str

    async def run(
        self, *argv: str, input: str | None = None, check: bool = True, timeout: float = 30.0
    ) -> Result: ...

    async def read(self, path: str) -> str | None: ...

    async def write(
        self, path: str, text: str, mode: str = "0644", dir_group: bool = False
    ) -> None: ...

    async def systemctl(self, *args: str, check: bool = True) -> Result: ...

    async def unit_active(self, unit: str) -> bool: ...

    async def has_program(self, program: str) -> bool: ...

    async def main_pid(self, unit: str) -> int: ...

    async def drop_runtime_dropin(self, path: str) -> None: ...


# A fault's runtime drop-in (a reboot forgets it, as it would forget a crash): keeps systemd
# from restarting what the fault broke until restore.
FAULT_DROPIN = "/run/systemd/system/{unit}.service.d/ecmptui-fault.conf"


async def until(predicate: Callable[[], Awaitable[bool]], seconds: float) -> bool:
    """Ask `predicate` every 50 ms until it says yes (True) or `seconds`, stretched by the
    machine's load, have passed (False)."""
    deadline = Deadline(seconds)
    while not deadline.expired():
        if await predicate():
            return True
        await asyncio.sleep(0.05)
    return False


@dataclass(frozen=True)
class Session:
    """One BGP session as the node's daemon reports it (the same shape for every daemon)."""

    name: str  # the daemon's own name for it: BIRD's protocol (peer1), FRR's neighbor
    family: Family
    neighbor: str | None
    state: str  # the BGP state: Established, Active, Connect, Idle, ...
    since: str = ""
    routes_imported: int = 0
    routes_exported: int = 0
    hold_timer: str | None = None
    last_error: str | None = None

    @property
    def established(self) -> bool:
        return self.state == "Established"


@dataclass(frozen=True)
class HealthSwitch:
    """The commands the node's health check runs to withdraw and announce the EIP without
    ecmptui: each entry is (argv, family or None). An announce entry of a family the operator
    withdrew alone is skipped by the checker."""

    withdraw: tuple[tuple[tuple[str, ...], str | None], ...]
    announce: tuple[tuple[tuple[str, ...], str | None], ...]

    def to_json(self) -> dict[str, list[dict[str, object]]]:
        return {
            verb: [{"argv": list(argv), "family": fam} for argv, fam in entries]
            for verb, entries in (("withdraw", self.withdraw), ("announce", self.announce))
        }


class RoutingDaemon(ABC):
    """One routing daemon on one node (the node's layout says where its files are)."""

    name: ClassVar[str]  # "bird" | "frr": what config, status and the CLI call it
    label: ClassVar[str]  # how people write it: "BIRD", "FRR"
    # the commands ecmptui runs on the node, and the Debian packages that install each
    programs: ClassVar[dict[str, tuple[str, ...]]]

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    # -- where it lives ----------------------------------------------------------------
    @property
    @abstractmethod
    def conf_path(self) -> str:
        """The config file the daemon runs from."""

    @property
    @abstractmethod
    def unit(self) -> str:
        """Its systemd unit."""

    # -- config ------------------------------------------------------------------------
    @abstractmethod
    def render(self, spec: NodeBgpSpec, hostname: str) -> str:
        """The node's whole config for `spec`."""

    @abstractmethod
    async def validate(self, node: NodeShell, path: str) -> str | None:
        """None when the daemon accepts the config at `path`, else its complaint."""

    @abstractmethod
    async def reload(self, node: NodeShell) -> str | None:
        """Make the running daemon take the config file without dropping healthy
        sessions. None on success, else why it failed."""

    async def prepare(self, node: NodeShell) -> None:  # noqa: B027 - a no-op by default
        """Anything the daemon needs before its first start (FRR: its daemons file)."""

    @abstractmethod
    def bfd_on(self, config: str) -> bool:
        """Whether `config` runs BFD with the peers."""

    async def _candidate(self, node: NodeShell, text: str) -> str:
        """`text` written beside the config and validated there; its path. Raises
        NodeError(CONFIG), the candidate removed, when the daemon rejects it."""
        new = self.conf_path + ".new"
        await node.write(new, text, "0640", dir_group=True)
        complaint = await self.validate(node, new)
        if complaint is not None:
            await node.run("rm", "-f", new)
            raise NodeError(
                f"{node.name}: {self.label} rejected the new config, nothing applied: {complaint}",
                CONFIG,
            )
        return new

    async def check(self, node: NodeShell, text: str) -> None:
        """Validate `text` on the node without applying it (raises NodeError(CONFIG))."""
        await node.run("rm", "-f", await self._candidate(node, text))

    async def apply(self, node: NodeShell, text: str) -> bool:
        """Validate `text` on the node, then make it live (started, or reloaded with the old
        config restored when the reload fails). True if anything changed."""
        path = self.conf_path
        current = await node.read(path)
        running = await self.running(node)
        if current == text and running:
            return False
        await self.prepare(node)
        new, backup = await self._candidate(node, text), path + ".bak"
        if current is not None:
            await node.run("cp", "-p", path, backup)
        await node.run("mv", new, path)
        if not running:
            await self.start(node)
            return True
        failed = await self.reload(node)
        if failed is not None:
            if current is not None:
                await node.run("mv", backup, path)
                await self.reload(node)
            raise NodeError(
                f"{node.name}: {self.label} reload failed; previous config restored: {failed}"
            )
        return True

    # -- the daemon --------------------------------------------------------------------
    @abstractmethod
    async def running(self, node: NodeShell) -> bool:
        """Whether the daemon answers (for FRR: bgpd)."""

    async def start(self, node: NodeShell) -> None:
        """Enable and (re)start its unit; wait (bounded) until it answers."""
        await node.systemctl("enable", "--quiet", self.unit)
        # Debian's frr unit allows 3 starts in 3 minutes: a drill restores more often than
        # that, and a refused start would leave the node without its daemon
        await node.systemctl("reset-failed", self.unit, check=False)
        await node.systemctl("restart", self.unit)
        if not await until(lambda: self.running(node), 10.0):
            raise NodeError(f"{node.name}: {self.label} did not start")

    async def stop(self, node: NodeShell) -> None:
        """Stop and disable it (a node switching to the other daemon)."""
        await node.systemctl("disable", "--now", "--quiet", self.unit, check=False)

    # -- reading -----------------------------------------------------------------------
    @abstractmethod
    async def sessions(self, node: NodeShell) -> list[Session]:
        """Every BGP session; raises NodeError(DAEMON_DOWN) when the daemon does not answer."""

    @abstractmethod
    async def bfd_peers(self, node: NodeShell) -> list[tuple[str, str]]:
        """(peer address, state: Up, Down, Init, AdminDown) of every BFD session."""

    # -- announcing --------------------------------------------------------------------
    @abstractmethod
    async def set_announced(self, node: NodeShell, enabled: bool, eips: list[str]) -> None:
        """The EIPs (`eips`: every family's) on or off, live and in the config file; the
        sessions stay up."""

    @abstractmethod
    def has_family_export(self, config: str, eip: str) -> bool:
        """Whether one family's announcement of `eip` can be switched in `config`."""

    @abstractmethod
    def set_family_export(self, config: str, eip: str, announce: bool) -> str:
        """`config` with `eip` (its family alone) announced or not."""

    @abstractmethod
    def health_switch(self, config: str, eips: list[str]) -> HealthSwitch:
        """What the health check runs to withdraw and announce `eips` (read from `config`)."""

    # -- sessions ----------------------------------------------------------------------
    @abstractmethod
    async def set_sessions(self, node: NodeShell, enabled: bool, family: Family | None) -> None:
        """Shut down or start the BGP sessions (of `family` alone); the daemon keeps
        running. Runtime only, as an operator's `shutdown` would be."""

    # -- faults ------------------------------------------------------------------------
    @abstractmethod
    async def session_pids(self, node: NodeShell) -> list[int]:
        """The processes that hold the BGP and BFD sessions (and, first, the supervisor that
        would restart them), for freeze and thaw."""

    async def freeze(self, node: NodeShell) -> None:
        """Stop the session processes (SIGSTOP): their sessions stall silently."""
        pids = await self.session_pids(node)
        if not pids:
            raise NodeError(f"{node.name}: {self.label} is not running: nothing to freeze")
        await node.run("kill", "-STOP", *map(str, pids))

    async def thaw(self, node: NodeShell) -> bool:
        """Continue the session processes a freeze stopped; whether any was."""
        stopped = []
        for pid in await self.session_pids(node):
            state = await node.run(
                "grep", "-q", "^State:.*stopped", f"/proc/{pid}/status", check=False
            )
            if state.exit_status == 0:
                stopped.append(str(pid))
        if stopped:
            await node.run("kill", "-CONT", *stopped)
        return bool(stopped)

    @abstractmethod
    async def kill(self, node: NodeShell) -> None:
        """Kill the processes that hold the sessions and keep them down until `revive`."""

    @abstractmethod
    async def revive(self, node: NodeShell) -> None:
        """Undo `kill`: bring the daemon back as its supervisor would."""
