"""The serve process's audit log: one line per event, as text or as JSON lines.

Every line names who (source address, user name, key fingerprint, role) and what happened;
secrets (the demo password, API tokens) are never among the fields.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

log = logging.getLogger("ecmptui.serve")

FORMATS = ("text", "json")


@dataclass
class Who:
    """The client a connection belongs to, as far as it is known yet."""

    source: str = "?"
    user: str = "-"
    fingerprint: str = "-"
    role: str = "-"


class Audit:
    """Writes events to the `ecmptui.serve` logger (text) or as JSON lines."""

    def __init__(self, fmt: str = "text") -> None:
        if fmt not in FORMATS:
            raise ValueError(fmt)
        self.fmt = fmt

    def event(self, event: str, who: Who | None = None, level: int = logging.INFO,
              **fields: object) -> None:
        who = who or Who()
        record = {"source": who.source, "user": who.user, "fingerprint": who.fingerprint,
                  "role": who.role, **{k: v for k, v in fields.items() if v is not None}}
        if self.fmt == "json":
            t = time.time()
            line = json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
                               + f".{int(t % 1 * 1000):03d}Z", "event": event, **record},
                              separators=(",", ":"), default=str)
        else:
            line = f"{event} " + " ".join(f"{k}={_text(v)}" for k, v in record.items())
        log.log(level, "%s", line)


def _text(value: object) -> str:
    s = str(value)
    return json.dumps(s) if (not s or any(c in s for c in ' ="\n')) else s
