"""When the fabric's forwarding table changed for an EIP: the convergence at its source.

`ip -ts monitor route` in the fabric namespace reports every kernel route change with a
timestamp. A drill or a dashboard action asks `first_change_after(t)`: how long after the
action the FIB for the EIP changed (a graceful withdraw takes a few milliseconds; a router
failure with two routers changes nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
import time

_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)\]\s*(.*)$")
MAX_CHANGES = 10_000  # bounded memory for a dashboard left open for days


class FibWatch:
    """Watches the fabric namespace's route changes for one prefix (e.g. 203.0.113.10)."""

    def __init__(self, netns: str, address: str) -> None:
        self.netns, self.address = netns, address
        self.changes: list[float] = []  # time.monotonic() of each change, oldest first
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task | None = None
        # `ip -ts` stamps wall-clock time; samples and actions use the monotonic clock
        self._offset = time.time() - time.monotonic()

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            "ip",
            "-n",
            self.netns,
            "-ts",
            "monitor",
            "route",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while True:
            line = await self._proc.stdout.readline()
            if not line:
                return
            t = self.parse(line.decode(errors="replace"))
            if t is not None:
                self.changes.append(t)
                if len(self.changes) > MAX_CHANGES:
                    del self.changes[: len(self.changes) - MAX_CHANGES]

    def parse(self, line: str) -> float | None:
        """The monotonic time of a route change line for our address, else None."""
        m = _STAMP.match(line.rstrip())
        if not m:
            return None
        route = m.group(2).split()
        dest = (
            route[1]
            if route and route[0] == "Deleted" and len(route) > 1
            else (route[0] if route else "")
        )
        if dest.split("/")[0] != self.address:
            return None
        wall = dt.datetime.fromisoformat(m.group(1)).timestamp()  # local time, as ip prints
        return wall - self._offset

    def first_change_after(self, t: float, within: float = 10.0) -> float | None:
        """Milliseconds from `t` to the first change of the route at or after `t`."""
        for c in self.changes:
            if t - 0.0005 <= c <= t + within:
                return round(max(0.0, c - t) * 1000, 1)
        return None

    async def stop(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            with contextlib.suppress(asyncio.TimeoutError, ProcessLookupError):
                await asyncio.wait_for(self._proc.wait(), 2)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._proc = self._reader = None
