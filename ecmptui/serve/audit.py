"""The serve process's audit log: one line per event, as text or as JSON lines.

Every line names who (source address, user name, key fingerprint, role) and what happened;
secrets (the demo password, API tokens) are never among the fields.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
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


MAX_VALUE = 200  # characters of one field: what a client sent is cut after this
MAX_LINE = 1024  # characters of one line
REPEAT_S = 10.0  # a repetitive event (rate-limited) is logged once per this, with a count


class Audit:
    """Writes events to the `ecmptui.serve` logger (text) or as JSON lines. Values a client
    chose are capped and escaped: no line carries a raw control character or exceeds
    MAX_LINE, in either format."""

    def __init__(self, fmt: str = "text", clock: Callable[[], float] = time.monotonic) -> None:
        if fmt not in FORMATS:
            raise ValueError(fmt)
        self.fmt = fmt
        self.clock = clock
        # key -> (last logged, held back since, the last held line's event, who, fields)
        self._repeats: dict[object, tuple[float, int, tuple | None]] = {}

    def event(
        self, event: str, who: Who | None = None, level: int = logging.INFO, **fields: object
    ) -> None:
        who = who or Who()
        record = {
            k: _capped(v)
            for k, v in {
                "source": who.source,
                "user": who.user,
                "fingerprint": who.fingerprint,
                "role": who.role,
                **{k: v for k, v in fields.items() if v is not None},
            }.items()
        }
        if self.fmt == "json":
            line = json.dumps(
                {"time": iso_now(), "event": event, **record}, separators=(",", ":"), default=str
            )
        else:  # control characters escaped (JSON string escapes), never written raw
            line = f"{event} " + " ".join(f"{k}={_text(v)}" for k, v in record.items())
        if len(line) > MAX_LINE and self.fmt == "json":  # still one JSON object, shorter
            line = json.dumps(
                {
                    "time": iso_now(),
                    "event": event,
                    "cut": True,
                    **{k: str(v)[:40] for k, v in record.items()},
                },
                separators=(",", ":"),
                default=str,
            )
        if len(line) > MAX_LINE:
            line = line[: MAX_LINE - 6] + "…(cut)"
        log.log(level, "%s", line)

    def repeated(self, key: object, event: str, who: Who | None = None, **fields: object) -> None:
        """An event that a client can repeat at will: logged at most once per REPEAT_S per
        `key`, with how many were held back since the last line."""
        now = self.clock()
        last, held, _ = self._repeats.get(key, (None, 0, None))
        if last is not None and now - last < REPEAT_S:
            self._repeats[key] = (last, held + 1, (event, who, fields))
            return
        self._repeats[key] = (now, 0, (event, who, fields))
        if len(self._repeats) > 10_000:  # bounded: forget the oldest keys
            for k in list(self._repeats)[:5_000]:
                del self._repeats[k]
        self.event(event, who, logging.INFO, **fields, **({"repeated": held} if held else {}))

    def forget(self, key: object) -> None:
        """A session that ended: what it held back is logged, and its counter goes."""
        last, held, line = self._repeats.pop(key, (None, 0, None))
        if held and line is not None:
            event, who, fields = line
            self.event(event, who, logging.INFO, **fields, repeated=held)

    def flush(self) -> None:
        """Log what every repetitive event held back (the server is stopping)."""
        for key in list(self._repeats):
            self.forget(key)


def iso_now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def _capped(value: object) -> object:
    if isinstance(value, int | float | bool):
        return value
    s = str(value)
    return s if len(s) <= MAX_VALUE else s[:MAX_VALUE] + f"…(+{len(s) - MAX_VALUE})"


def _text(value: object) -> str:
    s = str(value)
    plain = s and s.isprintable() and not any(c in s for c in ' ="\\')
    return s if plain else json.dumps(s)


class JsonLines(logging.Formatter):
    """`--log-format json`: every line is a JSON object, also the serve process's own
    messages (a generated host key, an unsafe operators file)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if message.startswith("{") and message.endswith("}"):
            return message  # an audit event, JSON already
        return json.dumps(
            {
                "time": iso_now(),
                "event": "log",
                "level": record.levelname.lower(),
                "message": _capped(message),
            },
            separators=(",", ":"),
        )
