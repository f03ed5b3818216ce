"""The provisioning steps and their progress events (no I/O: the dashboard imports these)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class StepState(enum.StrEnum):
    """Where a provisioning step (or one node within it) stands."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


STEPS: list[tuple[str, str]] = [
    ("ssh-key", "SSH key registered with the project"),
    ("devices", "servers created and active"),
    ("eip", "Elastic IP reserved"),
    ("bgp", "Local BGP enabled on the project"),
    ("sessions", "a BGP session per server"),
    ("configure", "servers configured over SSH (routing daemon, EIP on lo, nginx)"),
    ("verify", "sessions Established and EIP exported"),
    ("service", "the EIP answers end to end"),
]
KEY_LABEL = "ecmptui"


@dataclass(frozen=True)
class StepEvent:
    """Progress of one step (or of one node within a step)."""

    step: str
    state: StepState
    detail: str = ""
    node: str | None = None
    changed: bool = False

    def __post_init__(self) -> None:  # from the served feed's JSON too
        object.__setattr__(self, "state", StepState(self.state))
