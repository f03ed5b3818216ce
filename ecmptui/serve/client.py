"""A served session's view of the deployment: everything comes from the serve process's
feed (`ecmptui.serve.feed`), nothing is polled or probed by the session itself."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import fields
from typing import Any

from ecmptui.actions import Action
from ecmptui.cockpit import Cockpit, ReadOnlyError
from ecmptui.config import Settings
from ecmptui.deployment.status import DeploymentStatus
from ecmptui.deployment.steps import StepEvent
from ecmptui.errors import EcmpError
from ecmptui.family import Family
from ecmptui.jsonish import JsonObject
from ecmptui.serve.feed import MAX_LINE
from ecmptui.traffic.model import MAX_TIMELINE, ActionRecord
from ecmptui.traffic.samples import Sample

STATUS_WAIT = 5.0  # no status from the server for this long: say so
RECORD_FIELDS = {f.name for f in fields(ActionRecord)}


class FeedLost(EcmpError):
    """The serve process's feed ended."""


class RemoteJob:
    """A provisioning job run by the serve process: its closing line, once known."""

    def __init__(self) -> None:
        self.detail = ""


class FeedStream:
    """What the app holds while 'probing': the shared samples, until it stops."""

    def __init__(self, cockpit: FeedCockpit) -> None:
        self.cockpit = cockpit

    @property
    def running(self) -> bool:
        return self.cockpit.on_sample is not None

    async def stop(self) -> None:
        self.cockpit.on_sample = None


class FeedCockpit(Cockpit):
    """The dashboard's cockpit in a served session."""

    shared_timeline = True

    def __init__(self, settings: Settings, path: str, token: str, read_only: bool) -> None:
        super().__init__(settings, read_only=read_only)
        self.path, self.token = path, token
        self.hello: dict[str, Any] = {}
        self.on_sample: Callable[[Sample], None] | None = None
        self.on_record: Callable[[int, ActionRecord], None] | None = None
        self.on_step: Callable[[StepEvent], None] | None = None
        self.on_job: Callable[[str, str | None, str | None], None] | None = None
        self.probe_state = "waiting for the server's prober"
        self._status: tuple[DeploymentStatus | None, str | None, float] | None = None
        self._status_seq = self._status_seen = 0
        self._status_changed = asyncio.Event()
        self._requests: dict[int, asyncio.Future] = {}
        self._next_req = 0
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task | None = None
        self._lost: str | None = None
        self._fib: dict[float, float | None] = {}

    # -- connection ------------------------------------------------------------------------
    async def open(self) -> None:
        try:
            reader, self._writer = await asyncio.open_unix_connection(self.path, limit=MAX_LINE * 8)
        except OSError as exc:
            raise FeedLost(f"cannot reach the server's feed: {exc.strerror}") from exc
        self._writer.write(json.dumps({"k": "hello", "token": self.token}).encode() + b"\n")
        line = await asyncio.wait_for(reader.readline(), 10)
        if not line:
            raise FeedLost("the server refused this session's feed")
        self.hello = json.loads(line)
        if not self.hello.get("can_act"):
            self.read_only = True
        self._reader_task = asyncio.get_running_loop().create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                self._dispatch(json.loads(line))
            self._lost = "the server's feed ended"
        except (ValueError, ConnectionError, asyncio.LimitOverrunError) as exc:
            self._lost = f"the server's feed broke: {type(exc).__name__}"
        for fut in self._requests.values():
            if not fut.done():
                fut.set_exception(FeedLost(self._lost))
        self._status_changed.set()

    def _dispatch(self, msg: JsonObject) -> None:
        kind = msg.get("k")
        if kind == "samples" and self.on_sample is not None:
            for t, backend, error, latency in msg["s"]:
                self.on_sample(Sample(t, backend, error, latency))
        elif kind == "status":
            st = DeploymentStatus.from_json(msg["status"]) if msg.get("status") else None
            self._status = (st, msg.get("error"), float(msg.get("at", time.time())))
            self._status_seq += 1
            self._status_changed.set()
        elif kind == "probe":
            self.probe_state = str(msg.get("state", ""))
        elif kind == "action":
            rec = ActionRecord(**{k: v for k, v in msg["record"].items() if k in RECORD_FIELDS})
            self._fib[rec.t] = rec.fib_ms
            while len(self._fib) > MAX_TIMELINE:  # as many as the timeline keeps
                del self._fib[next(iter(self._fib))]
            if self.on_record is not None:
                self.on_record(int(msg["id"]), rec)
        elif kind == "step" and self.on_step is not None:
            self.on_step(StepEvent(**msg["event"]))
        elif kind == "job" and self.on_job is not None:
            self.on_job(str(msg.get("job")), msg.get("error"), msg.get("detail"))
        elif kind == "result":
            fut = self._requests.pop(int(msg.get("req", -1)), None)
            if fut is not None and not fut.done():
                fut.set_result(msg)

    async def _request(self, msg: JsonObject, timeout: float | None = None) -> JsonObject:
        if self._lost or self._writer is None:
            raise FeedLost(self._lost or "not connected to the server's feed")
        rid, self._next_req = self._next_req, self._next_req + 1
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._requests[rid] = fut
        self._writer.write(json.dumps({**msg, "req": rid}).encode() + b"\n")
        try:
            reply = await asyncio.wait_for(fut, timeout)
        finally:
            self._requests.pop(rid, None)
        if not reply.get("ok"):
            message = str(reply.get("message", "refused"))
            if message.startswith("read-only session"):
                raise ReadOnlyError(message)
            raise EcmpError(message)
        return reply

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader_task
        if self._writer is not None:
            self._writer.close()

    # -- what the app asks -----------------------------------------------------------------
    async def reset(self) -> None:
        """The server keeps the deployment: nothing to forget here."""

    def target_label(self) -> str:
        return str(self.hello.get("target") or super().target_label())

    def lab_up(self) -> bool | None:
        return self.hello.get("lab_up")

    def project_label(self) -> str:
        return str(self.hello.get("project", "-"))

    @property
    def fixed_rate(self) -> float | None:
        return float(self.hello.get("rate", 0)) or None

    async def status(self) -> DeploymentStatus:
        """The newest status the server sent that this session has not had yet (waiting
        for it); an error when the server reported one or sent nothing for a while."""
        if self._status_seq == self._status_seen and not self._lost:
            self._status_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._status_changed.wait(), STATUS_WAIT)
        if self._lost:
            raise FeedLost(self._lost)
        if self._status is None or self._status_seq == self._status_seen:
            raise EcmpError(f"the server sent no status for {STATUS_WAIT:.0f} s")
        self._status_seen = self._status_seq
        st, error, _at = self._status
        if st is None:
            raise EcmpError(error or "no status")
        return st

    async def probe(
        self,
        rate: float,
        on_sample: Callable[[Sample], None],
        timeout: float = 1.0,
        flows: int = 0,
        on_flow: Callable[..., None] | None = None,
        family: Family | None = None,
        netns: str | None = None,
    ) -> FeedStream:
        if family is not None or netns is not None:
            raise EcmpError("the server probes one EIP for every session")
        self.on_sample = on_sample
        return FeedStream(self)

    def fib_ms(self, t: float) -> float | None:
        return self._fib.get(t)

    async def act(
        self, node_name: str, action: Action, on_effect: Callable[[float], None] | None = None
    ) -> str:
        self._guard(f"{action.name} {node_name}")
        reply = await self._request({"k": "act", "node": node_name, "action": action.name})
        self.warnings.extend(reply.get("warnings") or [])
        return str(reply.get("message", ""))

    async def drain(
        self,
        node_name: str,
        timeout: float = 60.0,
        on_progress: Callable[[str], None] | None = None,
    ) -> tuple[str, str]:
        raise EcmpError(
            "drain from the server's command line (`ecmptui node drain`): a "
            "served session runs one action at a time through the server"
        )

    async def router_act(
        self, router: str, action: str, on_effect: Callable[[float], None] | None = None
    ) -> str:
        self._guard(f"{action} {router}")
        reply = await self._request({"k": "act", "node": router, "action": action, "router": True})
        return str(reply.get("message", ""))

    async def start_lab(self, progress: Callable[[str], None] | None = None) -> str:
        self._guard("start the lab")
        reply = await self._request({"k": "job", "job": "start-lab"})
        return str(reply.get("message", ""))

    async def check_nodes(self) -> list[dict]:
        return list((await self._request({"k": "check"})).get("data") or [])

    def provision(self, **overrides: Any) -> tuple[RemoteJob, AsyncIterator[StepEvent]]:
        self._guard("provision")
        return self._job("provision", overrides)

    def deprovision(self) -> AsyncIterator[StepEvent]:
        self._guard("deprovision")
        return self._job("deprovision", {})[1]

    def _job(self, job: str, values: JsonObject) -> tuple[RemoteJob, AsyncIterator[StepEvent]]:
        """The job runs in the serve process; its step events reach every session through
        `on_step`, so this iterator only waits for its end."""
        state = RemoteJob()

        async def events() -> AsyncIterator[StepEvent]:
            reply = await self._request({"k": "job", "job": job, "values": values})
            state.detail = str(reply.get("message", ""))
            return
            yield  # an async generator that yields nothing

        return state, events()
