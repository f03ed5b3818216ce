"""What `ecmptui serve` is configured with, and the state its connections share."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ecmptui.config import Settings
from ecmptui.metrics.probe_metrics import ProbeMetrics
from ecmptui.serve import guard
from ecmptui.serve.audit import Audit
from ecmptui.serve.feed import Hub


class Ending(Protocol):
    """A running terminal as the server's shutdown sees it (`session.DashboardSession`)."""

    def end(self, reason: str, message: bytes | None = None) -> None: ...


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ecmptui" / "serve"


@dataclass
class ServeConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = 2222
    authorized_keys: Path = field(default_factory=lambda: state_dir() / "authorized_keys")
    authorized_keys_given: bool = False
    operators: Path | None = None
    host_key: Path = field(default_factory=lambda: state_dir() / "ssh_host_ed25519_key")
    max_viewers: int = 8
    max_operators: int = 2
    max_startups: int = 10  # connections still logging in
    max_startups_per_source: int = 3  # of those, from one address (PerSourceMaxStartups)
    max_sessions_per_connection: int = 2  # terminals one connection may open (MaxSessions)
    max_sessions_per_source: int = 4  # terminals open at once from one address
    login_grace: float = 30.0  # to log in, and then to open a terminal
    idle_timeout: float = 900.0  # without input
    max_session: float = 3600.0  # a viewer's session, however busy
    input_rate: int = 65536  # bytes/s a session may type (burst: 4x)
    demo_password: str | None = None
    rate: float = 100.0  # the shared prober's requests per second
    log_format: str = "text"
    settings: Settings | None = None
    app_args: list[str] = field(default_factory=list)  # --config/--lab for the app
    metrics: ProbeMetrics | None = None  # `--metrics-listen`: what the shared prober feeds


class ServerState:
    """What every connection shares: slots, children, the guards, the feed, the log."""

    def __init__(self, cfg: ServeConfig, audit: Audit, hub: Hub | None) -> None:
        self.cfg, self.audit, self.hub = cfg, audit, hub
        self.active = {"viewer": 0, "operator": 0}
        self.sessions: set[Ending] = set()
        self.children: set[int] = set()
        self.unauthenticated = 0
        self.unauth_by_source: dict[str, int] = {}  # connections logging in, per address
        self.sessions_by_source: dict[str, int] = {}  # live terminals, per address
        self.penalties = guard.Penalties()
        self.all_ended = asyncio.Event()  # set when the last session has ended

    def limit(self, role: str) -> int:
        return self.cfg.max_operators if role == "operator" else self.cfg.max_viewers
