"""The BIRD 2 adapter of the routing-daemon port: `birdc` on the node's control socket,
`bird -p` to validate, `birdc configure` to reload."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecmptui.family import Family
from ecmptui.node import bird
from ecmptui.node.daemon_names import DAEMON_LABELS
from ecmptui.node.failure import DAEMON_DOWN, NodeError
from ecmptui.node.routing import FAULT_DROPIN, HealthSwitch, NodeShell, RoutingDaemon, Session

if TYPE_CHECKING:
    from ecmptui.node.bird import NodeBgpSpec

NO_RESTART = "[Service]\nRestart=no\n"  # the kill fault's drop-in: BIRD stays down


def session_of(p: bird.ProtocolInfo) -> Session:
    return Session(
        p.name,
        bird.protocol_family(p),
        p.neighbor_address,
        p.bgp_state or p.info.split(" ")[0] or p.state,
        p.since,
        p.routes_imported,
        p.routes_exported,
        p.hold_timer,
        p.last_error,
    )


class BirdDaemon(RoutingDaemon):
    name = "bird"
    label = DAEMON_LABELS[name]
    programs = {"bird": ("bird2",)}

    @property
    def conf_path(self) -> str:
        return self.layout.bird_conf

    @property
    def unit(self) -> str:
        return self.layout.bird_unit

    def birdc(self, *args: str) -> list[str]:
        return ["birdc", "-s", self.layout.bird_socket, *args]

    def render(self, spec: NodeBgpSpec, hostname: str) -> str:
        return bird.render_node_config(spec)

    async def validate(self, node: NodeShell, path: str) -> str | None:
        res = await node.run("bird", "-p", "-c", path, check=False)
        if res.exit_status == 0:
            return None
        msg = str(res.stderr or res.stdout).strip().splitlines()
        return msg[-1] if msg else "bird -p failed"

    async def reload(self, node: NodeShell) -> str | None:
        res = await node.run(*self.birdc("configure"), check=False)
        if res.exit_status == 0 and "Reconfigur" in str(res.stdout):
            return None
        return str(res.stdout).strip().splitlines()[-1:][0] if str(res.stdout).strip() else "?"

    def bfd_on(self, config: str) -> bool:
        return "bfd on;" in config

    async def running(self, node: NodeShell) -> bool:
        res = await node.run(*self.birdc("show", "status"), check=False)
        return res.exit_status == 0 and "Daemon is up" in str(res.stdout)

    async def protocols(self, node: NodeShell) -> list[bird.ProtocolInfo]:
        res = await node.run(*self.birdc("show", "protocols", "all"), check=False)
        if res.exit_status != 0:
            last = str(res.stdout or res.stderr).strip().splitlines()
            raise NodeError(
                f"{node.name}: BIRD is not running" + (f" ({last[-1]})" if last else ""),
                DAEMON_DOWN,
            )
        try:
            return bird.parse_protocols(str(res.stdout))
        except bird.BirdParseError as exc:
            raise NodeError(f"{node.name}: unreadable birdc output: {exc}") from exc

    async def sessions(self, node: NodeShell) -> list[Session]:
        return [session_of(p) for p in await self.protocols(node) if p.proto == "BGP"]

    async def bfd_peers(self, node: NodeShell) -> list[tuple[str, str]]:
        res = await node.run(*self.birdc("show", "bfd", "sessions"), check=False)
        return bird.parse_bfd_sessions(str(res.stdout)) if res.exit_status == 0 else []

    async def set_announced(self, node: NodeShell, enabled: bool, eips: list[str]) -> None:
        # the live switch first (takes effect in milliseconds), then the file, so that a
        # restart or reconfigure keeps the same state
        verb = "enable" if enabled else "disable"
        proto = self.layout.eip_protocol
        res = await node.run(*self.birdc(verb, proto), check=False)
        out = str(res.stdout)
        if res.exit_status != 0 or ("enabled" not in out and "disabled" not in out):
            raise NodeError(
                f"{node.name}: birdc {verb} {proto} failed: "
                f"{out.strip().splitlines()[-1:] or res.stderr}"
            )
        current = await node.read(self.conf_path)
        want = f"  disabled {'no' if enabled else 'yes'};"
        other = f"  disabled {'yes' if enabled else 'no'};"
        if current is not None and other in current:
            await node.write(self.conf_path, current.replace(other, want, 1), "0640", True)

    def has_family_export(self, config: str, eip: str) -> bool:
        return bird.has_family_export(config, eip)

    def set_family_export(self, config: str, eip: str, announce: bool) -> str:
        return bird.set_family_export(config, eip, announce)

    def health_switch(self, config: str, eips: list[str]) -> HealthSwitch:
        proto = self.layout.eip_protocol
        return HealthSwitch(
            withdraw=((tuple(self.birdc("disable", proto)), None),),
            announce=((tuple(self.birdc("enable", proto)), None),),
        )

    async def set_sessions(self, node: NodeShell, enabled: bool, family: Family | None) -> None:
        peers = [s.name for s in await self.sessions(node) if family in (None, s.family)]
        if not peers:
            which = f"{family.api} " if family else ""
            raise NodeError(f"{node.name}: no {which}BGP protocols in BIRD")
        verb = "enable" if enabled else "disable"
        for p in peers:
            await node.run(*self.birdc(verb, p))

    async def session_pids(self, node: NodeShell) -> list[int]:
        pid = await node.main_pid(self.unit)
        return [pid] if pid else []

    async def kill(self, node: NodeShell) -> None:
        await node.write(FAULT_DROPIN.format(unit=self.unit), NO_RESTART)
        await node.systemctl("daemon-reload")
        await node.systemctl("kill", "-s", "KILL", self.unit)

    async def revive(self, node: NodeShell) -> None:
        await node.drop_runtime_dropin(FAULT_DROPIN.format(unit=self.unit))
        if not await self.running(node):
            await self.start(node)
