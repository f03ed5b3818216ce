"""Run `ecmptui probe --jsonl` as a subprocess (in the lab's client namespace) and collect
its samples asynchronously: what drills and the dashboard use."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable

from ecmptui.errors import EcmpError
from ecmptui.traffic.flows import FlowEvent
from ecmptui.traffic.samples import Sample


def probe_argv(
    url: str,
    rate: float,
    timeout: float,
    netns: str | None,
    duration: float | None = None,
    flows: int = 0,
    flow_interval: float = 1.0,
    summary: bool = False,
) -> list[str]:
    """The prober command (`summary`: one JSON summary, else JSON lines); with a URL and an
    explicit namespace (or --no-netns) it needs no settings, so it can never wander to
    another lab."""
    argv = [
        sys.executable,
        "-m",
        "ecmptui",
        "probe",
        "--json" if summary else "--jsonl",
        "--rate",
        str(rate),
        "--timeout",
        str(timeout),
    ]
    if duration is not None:
        argv += ["--duration", str(duration)]
    if flows:
        argv += ["--flows", str(flows), "--flow-interval", str(flow_interval)]
    if netns:
        return ["ip", "netns", "exec", netns, *argv, "--netns", netns, url]
    return [*argv, "--no-netns", url]


class ProbeStream:
    """A prober subprocess whose samples go to `on_sample` if given (the dashboard keeps
    its own bounded store), else into `samples` (a drill reads them all at the end)."""

    def __init__(
        self,
        url: str,
        rate: float = 200.0,
        timeout: float = 1.0,
        netns: str | None = None,
        on_sample: Callable[[Sample], None] | None = None,
        flows: int = 0,
        flow_interval: float = 1.0,
        on_flow: Callable[[FlowEvent], None] | None = None,
    ) -> None:
        self.argv = probe_argv(url, rate, timeout, netns, flows=flows, flow_interval=flow_interval)
        self.samples: list[Sample] = []
        self.flow_events: list[FlowEvent] = []  # with flows: every open, break and move
        self.on_flow = on_flow  # ...or to this, and not kept here
        self.on_sample = on_sample
        self.received = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task | None = None
        self.stderr = b""

    async def start(self, wait_first: float = 5.0) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd="/",
            start_new_session=True,
        )
        self._reader = asyncio.create_task(self._read())
        deadline = asyncio.get_running_loop().time() + wait_first
        try:
            while not self.received:
                if self._proc.returncode is not None or self._reader.done():
                    assert self._proc.stderr is not None  # started with stderr=PIPE
                    err = (await self._proc.stderr.read()).decode().strip()
                    raise EcmpError(
                        f"prober exited: {err.splitlines()[-1] if err else 'no output'}"
                    )
                if asyncio.get_running_loop().time() > deadline:
                    raise EcmpError(f"prober sent no sample within {wait_first:.0f} s")
                await asyncio.sleep(0.02)
        except BaseException:  # an error, or the caller cancelled us: leave no prober behind
            await asyncio.shield(self.stop())
            raise

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        async for line in self._proc.stdout:
            if line.startswith(b'{"flow"'):
                try:
                    ev = FlowEvent.from_dict(json.loads(line))
                except (ValueError, KeyError):
                    continue
                if self.on_flow is not None:
                    self.on_flow(ev)
                else:
                    self.flow_events.append(ev)
                continue
            try:
                sample = Sample.from_json(line.decode())
            except (ValueError, KeyError):
                continue
            self.received += 1
            if self.on_sample is not None:
                self.on_sample(sample)  # not kept here too: hours at 1,000/s add up
            else:
                self.samples.append(sample)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def stop(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._reader, 2)
        if proc.stderr is not None:  # drain it so the transport closes with the process
            with contextlib.suppress(asyncio.TimeoutError, OSError):
                self.stderr += await asyncio.wait_for(proc.stderr.read(), 2)
