"""The dashboard's timeline (actions and what they cost) and its BGP log, written as JSON
lines and as Markdown (with the HTML page `ecmptui.report` makes), for an incident report
(no UI: the app and tests call it)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ecmptui.display import stamp
from ecmptui.errors import EcmpError
from ecmptui.traffic.model import ActionRecord

MARKUP = re.compile(r"\[/?[a-z #0-9]*\]")


@dataclass(frozen=True)
class TimelineRow:
    """An action as exported: its wall time instead of the monotonic one."""

    at: float
    node: str
    action: str
    by: str
    result: str
    convergence_ms: float | None
    recovery_ms: float | None
    failed: int
    fib_ms: float | None


def timeline_rows(records: Iterable[ActionRecord], wall_of: Any) -> list[TimelineRow]:
    """`wall_of(t)`: the wall time of a monotonic time."""
    return [
        TimelineRow(
            wall_of(r.t),
            r.node,
            r.action,
            r.by or r.source,
            r.summary(),
            r.convergence_ms,
            r.recovery_ms,
            sum(r.failed.values()),
            r.fib_ms,
        )
        for r in records
    ]


def write_export(
    directory: Path,
    rows: list[TimelineRow],
    log: list[tuple[float, str]],
    html: str | None = None,
) -> list[Path]:
    """timeline.jsonl, timeline.md, bgp-log.jsonl and bgp-log.md in `directory` (made if
    missing), and timeline.html when given; the paths written."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        out = []
        path = directory / "timeline.jsonl"
        path.write_text(
            "".join(json.dumps({**asdict(r), "time": stamp(r.at)}) + "\n" for r in rows)
        )
        out.append(path)
        md = ["| time | node | action | by | result |", "| --- | --- | --- | --- | --- |"]
        md += [f"| {stamp(r.at)} | {r.node} | {r.action} | {r.by} | {r.result} |" for r in rows]
        path = directory / "timeline.md"
        path.write_text("# Timeline\n\n" + "\n".join(md) + "\n")
        out.append(path)
        plain = [(at, MARKUP.sub("", text)) for at, text in log]
        path = directory / "bgp-log.jsonl"
        path.write_text(
            "".join(
                json.dumps({"at": at, "time": stamp(at), "event": text}) + "\n"
                for at, text in plain
            )
        )
        out.append(path)
        path = directory / "bgp-log.md"
        path.write_text(
            "# BGP log\n\n" + "".join(f"- `{stamp(at)}` {text}\n" for at, text in plain)
        )
        out.append(path)
        if html is not None:
            path = directory / "timeline.html"
            path.write_text(html)
            out.append(path)
    except OSError as exc:
        raise EcmpError(f"cannot export to {directory}: {exc.strerror}") from exc
    return out
