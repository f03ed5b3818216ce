"""Long-lived flows (`probe --flows N`): what a change does to connections already open.

Each flow is one TCP connection kept open with a keep-alive request loop; the backend that
answers is the one holding the connection. When ECMP sends the flow's packets to another
server, that server knows no such connection and resets it: the flow breaks, is reported
with where it was, and opens again (and is reported as moved when it lands elsewhere).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ecmptui.jsonish import JsonObject
from ecmptui.traffic.wire import SERVED_BY, raw_classify


@dataclass(frozen=True)
class FlowEvent:
    """A long-lived flow's news: `open` (connected, on `backend`), `break` (it broke while
    on `backend`: reset, timeout, closed) or `moved` (it came back on another backend)."""

    t: float
    flow: int
    event: str
    backend: str | None
    error: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "flow": self.flow,
                "t": round(self.t, 6),
                "event": self.event,
                "backend": self.backend,
                "error": self.error,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_dict(cls, d: JsonObject) -> FlowEvent:
        return cls(float(d["t"]), int(d["flow"]), str(d["event"]), d.get("backend"), d.get("error"))


class FlowKeeper:
    """`count` long-lived TCP connections to an http:// URL, each a keep-alive request loop
    (one GET every `interval` seconds on the same connection, answered by whichever backend
    holds it). A flow that breaks is reported with where it was, and opened again."""

    def __init__(
        self,
        url: str,
        count: int,
        interval: float = 1.0,
        timeout: float = 1.0,
        life: float | None = None,
    ) -> None:
        if not url.startswith("http://"):
            raise ValueError("long-lived flows need an http:// URL")
        if not 1 <= count <= 5000:
            raise ValueError("flows must be 1-5000")
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "", parts.port or 80
        path = parts.path or "/"
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUser-Agent: ecmptui-flow\r\n\r\n"
        ).encode()
        self.count, self.interval, self.timeout = count, interval, timeout
        self.life = life  # a flow closes by itself after this long (None: never)
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self, emit: Callable[[FlowEvent], None]) -> None:
        """Blocks until `stop()`; `emit` is called from this thread."""

        async def main() -> None:
            tasks = [asyncio.create_task(self._flow(i, emit)) for i in range(self.count)]
            await asyncio.to_thread(self._stop.wait)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run(main())

    async def _flow(self, i: int, emit: Callable[[FlowEvent], None]) -> None:
        await asyncio.sleep(random.random() * self.interval)  # spread the opens
        ends = None if self.life is None else time.monotonic() + self.life
        last: str | None = None
        while not self._stop.is_set():
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), self.timeout
                )
            except (OSError, TimeoutError):
                await asyncio.sleep(min(self.interval, 0.2))  # not up yet: try again
                continue
            backend: str | None = None
            try:
                while not self._stop.is_set():
                    if ends is not None and time.monotonic() >= ends:
                        emit(FlowEvent(time.monotonic(), i, "end", backend))
                        return  # closed by the client: an ending, not a break
                    writer.write(self.request)
                    now_backend = await asyncio.wait_for(self._answer(reader), self.timeout)
                    if backend is None:
                        backend = now_backend
                        kind = "moved" if last is not None and backend != last else "open"
                        emit(FlowEvent(time.monotonic(), i, kind, backend))
                    await asyncio.sleep(self.interval)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                err = (
                    "timeout"
                    if isinstance(exc, TimeoutError)
                    else "closed"
                    if isinstance(exc, (asyncio.IncompleteReadError, ValueError))
                    else raw_classify(exc)
                )
                if backend is not None:
                    emit(FlowEvent(time.monotonic(), i, "break", backend, err))
                    last = backend
            finally:
                writer.close()

    @staticmethod
    async def _answer(reader: Any) -> str | None:
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 2"):
            raise ValueError("not a 2xx answer")
        length = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.IGNORECASE)
        if length:
            await reader.readexactly(int(length.group(1)))
        if re.search(rb"\r\nconnection:\s*close", head, re.IGNORECASE):
            raise ValueError("the server closed the connection")
        m = SERVED_BY.search(head)
        return m.group(1).decode(errors="replace").strip() if m else None


def flow_summary(events: list[FlowEvent], count: int) -> JsonObject:
    """The `probe --flows` summary: flows opened, broken (by where they were), moved."""
    broken = [e for e in events if e.event == "break"]
    on: dict[str, int] = {}
    for e in broken:
        on[e.backend or "unknown"] = on.get(e.backend or "unknown", 0) + 1
    return {
        "flows": count,
        "opened": sum(e.event == "open" for e in events),
        "broken": len(broken),
        "broken_on": dict(sorted(on.items())),
        "moved": sum(e.event == "moved" for e in events),
        "ended": sum(e.event == "end" for e in events),
    }


class FlowsOnly:
    """`probe --rate 0 --flows N`: no new-connection traffic, only the flows, for
    `duration` seconds (or until stopped)."""

    def __init__(self, duration: float | None) -> None:
        self.duration = duration
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self, on_sample: Callable[..., None]) -> None:
        self._stop.wait(self.duration)


def disruption(
    events: list[FlowEvent], t0: float, t1: float, node: str, open_flows: int
) -> JsonObject:
    """What a change on `node` between t0 and t1 did to the flows open at t0: broken on the
    node itself (affected), broken on the others (bystanders), and came back elsewhere."""
    window = [e for e in events if t0 <= e.t < t1]
    broken = [e for e in window if e.event == "break"]
    on_node_before = flows_on(events, t0)
    return {
        "flows": open_flows,
        "on_node": sum(1 for b in on_node_before.values() if b == node),
        "affected": sum(1 for e in broken if e.backend == node),
        "bystanders": sum(1 for e in broken if e.backend != node),
        "moved": sum(1 for e in window if e.event == "moved"),
    }


def flows_on(events: list[FlowEvent], t: float) -> dict[int, str | None]:
    """Which backend each flow was on at time t (flows open then)."""
    where: dict[int, str | None] = {}
    for e in events:
        if e.t >= t:
            break
        if e.event in ("open", "moved"):
            where[e.flow] = e.backend
        elif e.event == "break":
            where.pop(e.flow, None)
    return where
