"""How a node's SSH host key is trusted (no I/O, so the dashboard can name it cheaply)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HostKeyPolicy:
    """`strict`: only keys in the file (the lab publishes them); `pin`: first key seen is
    recorded in the file and a later mismatch is refused."""

    mode: str
    known_hosts: Path
