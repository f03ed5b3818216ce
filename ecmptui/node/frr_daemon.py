"""The FRR adapter of the routing-daemon port (Debian's `frr` 8.4: one integrated frr.conf,
the `frr` unit with watchfrr supervising zebra, bgpd, staticd and bfdd).

State is read with `vtysh -c "show ... json"`; a config is validated with `vtysh --dryrun`
and applied with `frr-reload.py --reload` (a diff against the running config: healthy
sessions stay up). The sessions live in bgpd, BFD in bfdd: a kill or freeze fault breaks
both, and holds watchfrr first so that it cannot restart them behind the fault's back.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ecmptui.family import Family
from ecmptui.node import frr
from ecmptui.node.daemon_names import DAEMON_LABELS
from ecmptui.node.failure import DAEMON_DOWN, NodeError
from ecmptui.node.routing import (
    FAULT_DROPIN,
    HealthSwitch,
    NodeShell,
    RoutingDaemon,
    Session,
    until,
)

if TYPE_CHECKING:
    from ecmptui.node.bird import NodeBgpSpec

DAEMONS_FILE = "/etc/frr/daemons"
RELOAD = "/usr/lib/frr/frr-reload.py"
SUPERVISOR = "watchfrr"
SESSION_PROCESSES = ("bgpd", "bfdd")
# the faults' drop-in: no restart by systemd, and no watchdog (watchfrr is held stopped)
FAULT_DROPIN_TEXT = "[Service]\nRestart=no\nWatchdogSec=0\n"


class FrrDaemon(RoutingDaemon):
    name = "frr"
    label = DAEMON_LABELS[name]
    programs = {"vtysh": ("frr",), RELOAD: ("frr-pythontools",)}

    @property
    def conf_path(self) -> str:
        return self.layout.frr_conf

    @property
    def unit(self) -> str:
        return self.layout.frr_unit

    def render(self, spec: NodeBgpSpec, hostname: str) -> str:
        return frr.render_node_config(spec, hostname)

    async def vtysh(self, node: NodeShell, *commands: str, daemon: str = "bgpd") -> str:
        """Output of vtysh `commands` to `daemon` alone (vtysh would otherwise wait on any
        daemon that does not answer, watchfrr held by a fault included);
        NodeError(DAEMON_DOWN) when it does not answer."""
        argv = ["vtysh", "-d", daemon] + [w for c in commands for w in ("-c", c)]
        res = await node.run(*argv, check=False)
        out = str(res.stdout)
        if res.exit_status != 0 or "is not running" in out:
            last = (out or str(res.stderr)).strip().splitlines()
            raise NodeError(
                f"{node.name}: FRR's {daemon} is not running" + (f" ({last[-1]})" if last else ""),
                DAEMON_DOWN,
            )
        return out

    async def validate(self, node: NodeShell, path: str) -> str | None:
        res = await node.run("vtysh", "--dryrun", "-f", path, check=False)
        if res.exit_status == 0:
            return None
        complaint = frr.dryrun_complaint(f"{res.stdout or ''}\n{res.stderr or ''}")
        return complaint or f"vtysh --dryrun exited {res.exit_status}"

    async def reload(self, node: NodeShell) -> str | None:
        """frr-reload.py until the running config is the file's (checked with `--test`): one
        pass can leave a line behind (removing `bfd profile` after `bfd` from a neighbor
        turns BFD on again; bgpd busy resetting its peers may not answer a command), the
        next pass applies it. Bounded: 3 passes; the last complaint is the answer."""
        if not await node.has_program(RELOAD):
            return f"{RELOAD} is missing (Debian package frr-pythontools)"
        complaint = ""
        for _ in range(3):
            res = await node.run(RELOAD, "--reload", self.conf_path, check=False, timeout=60)
            if res.exit_status != 0:
                msg = str(res.stderr or res.stdout).strip().splitlines()
                complaint = msg[-1] if msg else f"frr-reload.py exited {res.exit_status}"
            test = await node.run(RELOAD, "--test", self.conf_path, check=False, timeout=60)
            left = frr.reload_leftovers(str(test.stdout))
            if test.exit_status == 0 and not left:
                return None
            if left:
                complaint = f"the running config still differs from the file: {'; '.join(left[:3])}"
        return complaint or "frr-reload.py --test failed"

    async def prepare(self, node: NodeShell) -> None:
        """bgpd and bfdd on in /etc/frr/daemons (Debian ships them off); a running FRR is
        restarted only when that file changed."""
        text = await node.read(DAEMONS_FILE)
        if text is None:
            raise NodeError(f"{node.name}: {DAEMONS_FILE} is missing: is FRR installed?")
        new = text
        for d in SESSION_PROCESSES:
            new = new.replace(f"\n{d}=no", f"\n{d}=yes")
        if new != text:
            await node.write(DAEMONS_FILE, new, "0640", dir_group=True)
            if await node.unit_active(self.unit):
                await node.systemctl("restart", self.unit)

    def bfd_on(self, config: str) -> bool:
        return any(
            line.strip().startswith("neighbor ") and line.strip().endswith(" bfd")
            for line in config.splitlines()
        )

    async def running(self, node: NodeShell) -> bool:
        res = await node.run("vtysh", "-d", "bgpd", "-c", "show bgp summary json", check=False)
        return res.exit_status == 0 and str(res.stdout).lstrip().startswith("{")

    async def configured(self, node: NodeShell) -> bool:
        """bgpd answers and has its neighbors (a restarted bgpd answers before vtysh has
        given it the config)."""
        try:
            return bool(await self.sessions(node))
        except NodeError:
            return False

    async def start(self, node: NodeShell) -> None:
        await super().start(node)
        if not await until(lambda: self.configured(node), 10.0):
            raise NodeError(f"{node.name}: FRR started but bgpd has no BGP neighbors configured")

    async def sessions(self, node: NodeShell) -> list[Session]:
        summary = await self.vtysh(node, "show bgp summary json")
        neighbors = await self.vtysh(node, "show bgp neighbors json")
        try:
            return frr.parse_sessions(summary, neighbors, time.time())
        except frr.FrrParseError as exc:
            raise NodeError(f"{node.name}: unreadable vtysh output: {exc}") from exc

    async def bfd_peers(self, node: NodeShell) -> list[tuple[str, str]]:
        try:
            return frr.parse_bfd_peers(await self.vtysh(node, "show bfd peers json", daemon="bfdd"))
        except (NodeError, frr.FrrParseError):
            return []  # bfdd not running: no BFD sessions to show

    async def _config(self, node: NodeShell) -> str:
        text = await node.read(self.conf_path)
        if text is None:
            raise NodeError(f"{node.name}: no FRR config at {self.conf_path}")
        return text

    async def set_announced(self, node: NodeShell, enabled: bool, eips: list[str]) -> None:
        current = await self._config(node)
        new = current
        for eip in eips:
            new = frr.set_network(new, eip, enabled)
        if new != current:
            # live first (bgpd withdraws in milliseconds), then the file, validated and
            # reloaded, so that a restart keeps the same state
            asn = frr.local_as(current) or 0
            for family, line in frr.eip_networks(current, eips) if asn else []:
                await node.run(*frr.network_argv(asn, family, line, enabled), check=False)
            await self.apply(node, new)
            return
        # the file already says so; the running config may not (the health check switches
        # it live): make them agree
        failed = await self.reload(node)
        if failed is not None:
            raise NodeError(f"{node.name}: FRR reload failed: {failed}")

    def has_family_export(self, config: str, eip: str) -> bool:
        return frr.has_network(config, eip)

    def set_family_export(self, config: str, eip: str, announce: bool) -> str:
        return frr.set_network(config, eip, announce)

    def health_switch(self, config: str, eips: list[str]) -> HealthSwitch:
        asn = frr.local_as(config)
        if asn is None:
            raise NodeError("its FRR config has no `router bgp`: nothing to switch")
        nets = frr.eip_networks(config, eips)
        return HealthSwitch(
            withdraw=tuple((frr.network_argv(asn, f, ln, False), f.api) for f, ln in nets),
            announce=tuple((frr.network_argv(asn, f, ln, True), f.api) for f, ln in nets),
        )

    async def set_sessions(self, node: NodeShell, enabled: bool, family: Family | None) -> None:
        asn = frr.local_as(await self._config(node))
        peers = [s.name for s in await self.sessions(node) if family in (None, s.family)]
        if asn is None or not peers:
            which = f"{family.api} " if family else ""
            raise NodeError(f"{node.name}: no {which}BGP neighbors in FRR")
        await node.run(*frr.neighbor_argv(asn, peers, enabled))

    async def _pids(self, node: NodeShell, names: tuple[str, ...]) -> list[int]:
        res = await node.run("pidof", *names, check=False)
        return [int(w) for w in str(res.stdout).split() if w.isdigit()]

    async def session_pids(self, node: NodeShell) -> list[int]:
        supervisor = await node.main_pid(self.unit)
        return ([supervisor] if supervisor else []) + await self._pids(node, SESSION_PROCESSES)

    async def _signal_held(self, node: NodeShell, signal: str) -> None:
        """`signal` to bgpd and bfdd, watchfrr held stopped first (it would restart what the
        fault broke) and systemd told neither to restart FRR nor to expect watchfrr's
        watchdog until the fault is undone."""
        pids = await self._pids(node, SESSION_PROCESSES)
        if not pids:
            raise NodeError(f"{node.name}: FRR's bgpd and bfdd are not running")
        await node.write(FAULT_DROPIN.format(unit=self.unit), FAULT_DROPIN_TEXT)
        await node.systemctl("daemon-reload")
        await node.systemctl("kill", "-s", "STOP", "--kill-who=main", self.unit)
        await node.run("kill", f"-{signal}", *map(str, pids))

    async def freeze(self, node: NodeShell) -> None:
        await self._signal_held(node, "STOP")

    async def kill(self, node: NodeShell) -> None:
        await self._signal_held(node, "KILL")

    async def thaw(self, node: NodeShell) -> bool:
        thawed = await super().thaw(node)
        await node.drop_runtime_dropin(FAULT_DROPIN.format(unit=self.unit))
        return thawed

    async def revive(self, node: NodeShell) -> None:
        """FRR restarted as a whole (faster than waiting for watchfrr's restart timer, and
        bgpd gets its config from the file as at boot)."""
        await node.systemctl("kill", "-s", "CONT", "--kill-who=main", self.unit, check=False)
        await node.drop_runtime_dropin(FAULT_DROPIN.format(unit=self.unit))
        await self.start(node)
