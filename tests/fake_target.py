"""An in-process target for fast tests of the app, the screens, the cockpit, the timeline,
the export and the served session: it implements the deployment port (`Target`,
`Deployment`, `RouterView`) with deterministic nodes, sessions and faults, and answers the
prober on loopback with the name of a node that announces (round robin), as the fabric's
ECMP would. The real code runs on top of it: the status poller and `gather`, `operate` and
the node faults (their shell commands are interpreted by `FakeNode.run`).

The lab tests stay the acceptance tests of the real path; this is beside them."""

from __future__ import annotations

import itertools
import shlex
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ecmptui import config
from ecmptui.cockpit import LocalCockpit
from ecmptui.config import Settings
from ecmptui.deployment.port import Capabilities, Deployment, Target, TargetKind
from ecmptui.deployment.records import Inventory, NodeRecord
from ecmptui.deployment.status import CoreView, RouterStatus
from ecmptui.family import Family
from ecmptui.node.bird import NodeBgpSpec
from ecmptui.node.remote_shell import Result
from ecmptui.node.routing import HealthSwitch, NodeShell, RoutingDaemon, Session
from ecmptui.node.server import Layout, Node, NodeError, NodeFailure

ROUTERS = {"core1": "169.254.255.1", "core2": "169.254.255.2"}
EIP = "203.0.113.10"
EIP6 = "2001:db8:ec:1ff::10"  # a dual-stack fake: its HTTP front also listens on [::1]
SINCE = "2026-11-26 18:10:12.459"


@dataclass
class FakeServer:
    """One simulated server: its routing daemon, nginx, the EIP's announcement and faults."""

    name: str
    index: int
    daemon: str = "bird"  # which one it runs: bird | frr
    bird: str = "running"  # the daemon's state: running | killed | frozen
    nginx: bool = True
    withdrawn: bool = False
    sessions_up: bool = True  # `node shutdown` takes them down
    isolated: bool = False
    files: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"198.18.{10 + self.index}.2"

    def established(self, router: str, fleet: Fleet) -> bool:
        return (
            self.bird == "running"
            and self.sessions_up
            and not self.isolated
            and fleet.routers[router] == "running"
        )

    def announcing(self, fleet: Fleet) -> bool:
        return not self.withdrawn and any(self.established(r, fleet) for r in ROUTERS)


class Fleet:
    """The simulated deployment: servers and the two core routers."""

    def __init__(
        self, nodes: int = 2, prefix: str = "ecmp-node", daemons: tuple[str, ...] = ("bird",)
    ) -> None:
        self.servers = {
            f"{prefix}{i}": FakeServer(f"{prefix}{i}", i, daemons[(i - 1) % len(daemons)])
            for i in range(1, nodes + 1)
        }
        self.routers = dict.fromkeys(ROUTERS, "running")  # running | killed | frozen | isolated
        self._turn = itertools.count()
        self.lock = threading.Lock()

    def answering(self) -> list[FakeServer]:
        """The servers the fabric forwards to: announcing, nginx up."""
        return [s for s in self.servers.values() if s.announcing(self)]

    def answer(self) -> str | None:
        """Who answers the next request (None: nobody; the request fails)."""
        with self.lock:
            live = self.answering()
            if not live:
                return None
            server = live[next(self._turn) % len(live)]
            return server.name if server.nginx else None


class FakeNode(Node):
    """A `Node` whose shell is a `FakeServer`: the commands ecmptui runs over SSH act on it."""

    def __init__(self, server: FakeServer, fleet: Fleet) -> None:  # no SSH: nothing to open
        self.name, self.index, self.host = server.name, server.index, ""
        self.layout = Layout(daemon=server.daemon)
        self.server, self.fleet = server, fleet
        self.daemon = FAKE_DAEMONS[server.daemon](self.layout, server, fleet)

    @property
    def usable(self) -> bool:
        return True

    async def close(self) -> None:
        pass

    async def run(
        self, *argv: str, input: str | None = None, check: bool = True, timeout: float = 30.0
    ) -> Result:
        res = self._run(list(argv), input)
        if check and res.exit_status != 0:
            raise NodeError(f"{self.name}: {shlex.join(argv)} failed: {res.stdout}")
        return res

    def _run(self, argv: list[str], stdin: str | None) -> Result:
        s, files = self.server, self.server.files
        ok, no = Result(0, ""), Result(1, "")
        match argv:
            case ["cat", path]:
                return Result(0, files[path]) if path in files else no
            case ["test", "-e", path]:
                return ok if path in files else no
            case ["mkdir", *_] | ["systemctl", "daemon-reload"]:
                return ok
            case ["touch", path]:
                files.setdefault(path, "")
                return ok
            case ["rm", "-f", *paths]:
                for p in paths:
                    files.pop(p, None)
                return ok
            case ["sh", "-c", script, "sh", entry, path] if ">>" in script:
                if "grep" not in script or entry not in files.get(path, "").split():
                    files[path] = files.get(path, "") + entry + "\n"
                return ok
            case ["sed", "-i", expr, path]:
                entry = expr.strip("/d").strip("^$")
                files[path] = "".join(f"{e}\n" for e in files.get(path, "").split() if e != entry)
                return ok
            case ["nft", "-f", "-"]:
                s.isolated = True
                return ok
            case ["nft", "delete", "table", *_]:
                was, s.isolated = s.isolated, False
                return ok if was else no
            case ["systemctl", *args]:
                return self._systemctl(args)
        return Result(127, f"fake node: {shlex.join(argv)}: not simulated")

    def _systemctl(self, args: list[str]) -> Result:
        s = self.server
        match args:
            case ["stop", "nginx"]:
                s.nginx = False
            case ["start", "nginx"]:
                s.nginx = True
            case ["is-active", "--quiet", unit]:
                return Result(0 if unit == "nginx" and s.nginx else 3, "")
            case _:
                return Result(1, f"fake node: systemctl {' '.join(args)}: not simulated")
        return Result(0, "")

    async def write(
        self, path: str, text: str, mode: str = "0644", dir_group: bool = False
    ) -> None:
        self.server.files[path] = text

    async def lo_addresses(self) -> list[str]:
        return ["127.0.0.1/8", f"{EIP}/32", f"{EIP6}/128"]

    async def missing_eips(self, eips: list[str]) -> list[str]:
        return []  # a fake server's EIP is always on its lo


class FakeDaemon(RoutingDaemon):
    """The routing-daemon port over a `FakeServer`: sessions per router, the EIP's switch,
    kill/freeze/thaw; no config files (the fake target has no API to render them from)."""

    def __init__(self, layout: Layout, server: FakeServer, fleet: Fleet) -> None:
        super().__init__(layout)
        self.server, self.fleet = server, fleet

    @property
    def conf_path(self) -> str:
        return f"/etc/{self.name}.conf"

    @property
    def unit(self) -> str:
        return self.name

    def render(self, spec: NodeBgpSpec, hostname: str) -> str:
        raise NodeError("the fake target renders no config")

    async def validate(self, node: NodeShell, path: str) -> str | None:
        return None

    async def reload(self, node: NodeShell) -> str | None:
        return None

    def bfd_on(self, config: str) -> bool:
        return False

    async def running(self, node: NodeShell) -> bool:
        return self.server.bird == "running"

    async def start(self, node: NodeShell) -> None:
        self.server.bird = "running"

    def _session_name(self, router: str, addr: str) -> str:
        return f"peer{router[-1]}" if self.name == "bird" else addr

    async def sessions(self, node: NodeShell) -> list[Session]:
        s = self.server
        if s.bird != "running":
            raise NodeError(f"{s.name}: {self.label} is not running", NodeFailure.DAEMON_DOWN)
        out = []
        for router, addr in ROUTERS.items():
            up = s.established(router, self.fleet)
            state = "Established" if up else ("Idle" if not s.sessions_up else "Active")
            out.append(
                Session(
                    self._session_name(router, addr), Family.IPV4, addr, state, SINCE,
                    0, 1 if up and not s.withdrawn else 0, "2.5/3" if up else None,
                )
            )  # fmt: skip
        return out

    async def bfd_peers(self, node: NodeShell) -> list[tuple[str, str]]:
        return []

    async def set_announced(self, node: NodeShell, enabled: bool, eips: list[str]) -> None:
        if self.server.bird != "running":
            raise NodeError(f"{self.server.name}: {self.label} is not running")
        self.server.withdrawn = not enabled

    def has_family_export(self, config: str, eip: str) -> bool:
        return False

    def set_family_export(self, config: str, eip: str, announce: bool) -> str:
        return config

    def health_switch(self, config: str, eips: list[str]) -> HealthSwitch:
        return HealthSwitch((), ())

    async def set_sessions(self, node: NodeShell, enabled: bool, family: Family | None) -> None:
        await self.sessions(node)  # a daemon that does not answer cannot act
        self.server.sessions_up = enabled

    async def session_pids(self, node: NodeShell) -> list[int]:
        return [4242] if self.server.bird != "killed" else []

    async def freeze(self, node: NodeShell) -> None:
        self.server.bird = "frozen"

    async def thaw(self, node: NodeShell) -> bool:
        was = self.server.bird == "frozen"
        if was:
            self.server.bird = "running"
        return was

    async def kill(self, node: NodeShell) -> None:
        self.server.bird = "killed"

    async def revive(self, node: NodeShell) -> None:
        self.server.bird = "running"


class FakeBird(FakeDaemon):
    name, label, programs = "bird", "BIRD", {"bird": ("bird2",)}


class FakeFrr(FakeDaemon):
    name, label, programs = "frr", "FRR", {"vtysh": ("frr",)}


FAKE_DAEMONS: dict[str, type[FakeDaemon]] = {"bird": FakeBird, "frr": FakeFrr}


class FakeRouters:
    """The two cores and the fabric as the port's `RouterView` sees them."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def names(self) -> list[str]:
        return list(ROUTERS)

    def next_hops(self, prefix: str) -> list[str]:
        return [s.address for s in self.fleet.answering()]

    def ecmp_mode(self) -> str:
        return "hash"

    def status(self, inv: Inventory) -> RouterStatus:
        live = self.fleet.answering()
        cores = [
            CoreView(
                r, addr, self.fleet.routers[r],
                [s.name for s in self.fleet.servers.values()
                 if s.established(r, self.fleet) and not s.withdrawn],
            )
            for r, addr in ROUTERS.items()
        ]  # fmt: skip
        return RouterStatus([s.address for s in live], [s.name for s in live], cores)

    def set_weight(self, gateway: str, weight: int | None) -> None:
        raise NodeError("the fake fabric hashes: no weights")

    def kill_bird(self, router: str) -> None:
        self.fleet.routers[router] = "killed"

    def freeze_bird(self, router: str) -> None:
        self.fleet.routers[router] = "frozen"

    def isolate(self, router: str) -> None:
        self.fleet.routers[router] = "isolated"

    def restore(self, router: str) -> list[str]:
        was, self.fleet.routers[router] = self.fleet.routers[router], "running"
        return [] if was == "running" else [was]

    def fib_watch(self, eip: str) -> FakeFibWatch:
        return FakeFibWatch(eip)


class FakeFibWatch:
    def __init__(self, address: str) -> None:
        self.address = address

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def first_change_after(self, t: float) -> float | None:
        return None


class FakeTarget(Target):
    """A target that owns its machines and routers, like the lab, but in this process."""

    kind = TargetKind.LAB
    caps = Capabilities(faults=True, router_view=True, api=False, read_only_default=False)

    def __init__(self, settings: Settings, fleet: Fleet, url: str, url6: str | None = None) -> None:
        super().__init__(settings)
        self.fleet, self.url, self.url6 = fleet, url, url6

    def label(self) -> str:
        return "fake lab"

    def routers(self) -> FakeRouters:
        return FakeRouters(self.fleet)

    def open(self) -> Deployment:
        return FakeDeployment(self.settings, self)


class FakeDeployment:
    """The deployment port over the fleet (no API: like a static target, but faults)."""

    def __init__(self, settings: Settings, target: FakeTarget) -> None:
        self._settings, self._target = settings, target

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def target(self) -> Target:
        return self._target

    @property
    def client(self) -> None:
        return None

    def inventory(self) -> Inventory:
        nodes = [
            NodeRecord(s.name, s.index, f"dev-{s.index}", f"127.0.0.{s.index + 1}",
                       s.address, f"198.18.{10 + s.index}.1", "active", list(ROUTERS.values()))
            for s in self._target.fleet.servers.values()
        ]  # fmt: skip
        dual = self._target.url6 is not None
        return Inventory("fake", EIP, "eip-1", nodes, EIP6 if dual else None)

    async def ainventory(self) -> Inventory:
        return self.inventory()

    def inventory_or_last(self, warn: Callable[[str], None]) -> Inventory:
        return self.inventory()

    async def connect(self, rec: NodeRecord) -> Node:
        return FakeNode(self._target.fleet.servers[rec.name], self._target.fleet)

    @asynccontextmanager
    async def node(self, rec: NodeRecord) -> AsyncIterator[Node]:
        yield await self.connect(rec)

    def probe_target(self, inv: Inventory, family: Family | None = None) -> tuple[str, str | None]:
        if family is Family.IPV6:
            inv.eip_for(family)  # a clear error where there is none
            assert self._target.url6 is not None
            return self._target.url6, None
        return self._target.url, None

    async def reboot(self, rec: NodeRecord, timeout: float = 90.0) -> float:
        raise NodeError("the fake target has no API to reboot through")

    def forget_host(self, address: str) -> None:
        pass


class _Backend(BaseHTTPRequestHandler):
    fleet: Fleet

    def do_GET(self) -> None:
        self.server.hits += 1  # type: ignore[attr-defined]
        name = self.fleet.answer()
        if name is None:  # nobody announces, or its nginx is down: refused, as a router would
            self.send_error(503)
            return
        body = f"{name}\n".encode()
        self.send_response(200)
        self.send_header("X-Served-By", name)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class _Front(ThreadingHTTPServer):
    daemon_threads = True
    hits = 0  # requests answered (or refused): which front the prober is aimed at

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a prober stopped mid-request (a broken pipe) is no news here


class _Front6(_Front):
    address_family = socket.AF_INET6


class FakeLab:
    """The fleet, its HTTP front on loopback, and cockpits on it (use as a context).
    `dual`: a dual-stack deployment, its IPv6 EIP answered by a second front on [::1]."""

    def __init__(
        self,
        tmp_path: Path,
        nodes: int = 2,
        dual: bool = False,
        daemons: tuple[str, ...] = ("bird",),
    ) -> None:
        self.fleet = Fleet(nodes, daemons=daemons)
        handler = type("Backend", (_Backend,), {"fleet": self.fleet})
        self.http = _Front(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/"
        self.http6 = _Front6(("::1", 0), handler) if dual else None
        self.url6 = f"http://[::1]:{self.http6.server_address[1]}/" if self.http6 else None
        cfg = tmp_path / "fake.toml"
        cfg.write_text('target = "lab"\nlab = "fake"\n')
        self.settings = config.load(cfg, env={})
        fronts = [self.http, *([self.http6] if self.http6 else [])]
        self._fronts = fronts
        self._threads = [threading.Thread(target=f.serve_forever, daemon=True) for f in fronts]

    def __enter__(self) -> FakeLab:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for front in self._fronts:
            front.shutdown()
            front.server_close()

    def target(self) -> FakeTarget:
        return FakeTarget(self.settings, self.fleet, self.url, self.url6)

    def cockpit(self, read_only: bool = False) -> LocalCockpit:
        return LocalCockpit(self.settings, read_only=read_only, target=self.target())

    def server(self, name: str) -> FakeServer:
        return self.fleet.servers[name]
