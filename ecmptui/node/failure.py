"""Why a node command failed: `NodeError` and its `NodeFailure` reason."""

from __future__ import annotations

import enum

from ecmptui.errors import EcmpError


class NodeFailure(enum.Enum):
    """Why a node command failed, for callers that act on it (never by matching text)."""

    UNREACHABLE = "unreachable"  # no SSH session, or it broke
    DAEMON_DOWN = "daemon-down"  # the routing daemon (BIRD, FRR's bgpd) does not answer
    COMMAND = "command"  # a command ran and failed
    CONFIG = "config"  # the daemon refused a config (nothing applied)
    INSTALL = "install"  # a package could not be installed


class NodeError(EcmpError):
    """A node could not be reached or refused an action; `reason` says which."""

    def __init__(self, message: str, reason: NodeFailure = NodeFailure.COMMAND) -> None:
        super().__init__(message)
        self.reason = reason


UNREACHABLE, DAEMON_DOWN, CONFIG, INSTALL = (
    NodeFailure.UNREACHABLE,
    NodeFailure.DAEMON_DOWN,
    NodeFailure.CONFIG,
    NodeFailure.INSTALL,
)
