"""One feed for every served session: the serve process polls the status and runs the
prober once, and streams both to each session's app over a local socket; operators' actions
come back the same way, so they are checked, serialized and logged in one place.

The protocol is JSON lines on a Unix socket in a private (0700) directory. A session's app
proves which session it is with the token the serve process put in its environment; its role
comes from the serve process, never from the app.

Server -> app: hello, status, samples, probe, action (a timeline record), step, job, result.
App -> server: hello {token}, act {req, node, action, router}, job {req, job, values},
check {req}.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ecmptui.cockpit import LocalCockpit, ReadOnlyError, SampleStream
from ecmptui.config import Settings
from ecmptui.deployment import operate
from ecmptui.errors import EcmpError
from ecmptui.jsonish import JsonObject
from ecmptui.metrics.probe_metrics import ProbeMetrics
from ecmptui.serve.audit import Audit, Who
from ecmptui.targets import dashboard_read_only
from ecmptui.traffic.model import ActionRecord, TrafficModel
from ecmptui.traffic.samples import Sample
from ecmptui.traffic.timeline import run_recorded

log = logging.getLogger("ecmptui.serve")

FEED_ENV, TOKEN_ENV = "ECMPTUI_FEED", "ECMPTUI_FEED_TOKEN"
STATUS_TIMEOUT = 15.0  # a status gather that takes longer is reported as an error
MAX_BACKLOG = 4 << 20  # bytes queued for one session; more and it is dropped
MAX_LINE = 1 << 20  # longest request a session may send
JOBS = ("provision", "deprovision", "start-lab")


def encode(msg: JsonObject) -> bytes:
    return json.dumps(msg, separators=(",", ":"), default=str).encode() + b"\n"


def sample_row(s: Sample) -> list[Any]:
    return [round(s.t, 6), s.backend, s.error, round(s.latency_ms, 3)]


@dataclass
class Session:
    """A session the serve process started: who it is and its app's connection."""

    who: Who
    token: str
    writer: asyncio.StreamWriter | None = None
    actions: int = 0
    started: float = field(default_factory=time.monotonic)


class Hub:
    """The shared status poller and prober, and the socket the sessions' apps read."""

    def __init__(self, settings: Settings, rate: float, audit: Audit) -> None:
        self.settings, self.rate, self.audit = settings, rate, audit
        self.cockpit = LocalCockpit(settings, read_only=dashboard_read_only(settings))
        self.dir = Path(tempfile.mkdtemp(prefix="ecmptui-serve-"))  # 0700
        self.path = self.dir / "feed.sock"
        self.sessions: dict[str, Session] = {}
        self.model = TrafficModel()
        self.records: dict[int, ActionRecord] = {}  # id -> record still being measured
        self._record_who: dict[int, Who] = {}
        self._next_id = 0
        self._status_line: bytes | None = None
        self._probe_line = encode({"k": "probe", "state": "prober idle"})
        self._pending: list[Sample] = []
        self._eip: str | None = None
        self._stream: SampleStream | None = None
        self._probe_task: asyncio.Task | None = None
        self._tasks: list[asyncio.Task] = []
        self._server: asyncio.AbstractServer | None = None
        self._act_lock = asyncio.Lock()  # one operator action at a time
        self.job_running = False
        self.polls = 0
        self.metrics: ProbeMetrics | None = None  # `serve --metrics-listen`

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(
            self._client, path=str(self.path), limit=MAX_LINE
        )
        os.chmod(self.path, 0o600)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._poll_loop()),
            loop.create_task(self._flush_loop()),
            loop.create_task(self._tick_loop()),
        ]

    async def stop(self) -> None:
        for task in [*self._tasks, *([self._probe_task] if self._probe_task else [])]:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._stop_probe()
        if self._server is not None:
            self._server.close()
        for s in self.sessions.values():
            if s.writer is not None:
                s.writer.close()
        with contextlib.suppress(Exception):
            await self.cockpit.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def register(self, who: Who) -> str:
        """A new session: the token its app presents to the feed."""
        token = secrets.token_hex(16)
        self.sessions[token] = Session(who, token)
        return token

    def unregister(self, token: str) -> None:
        s = self.sessions.pop(token, None)
        if s is not None and s.writer is not None:
            s.writer.close()

    def env(self, token: str) -> dict[str, str]:
        return {FEED_ENV: str(self.path), TOKEN_ENV: token}

    # -- sending ---------------------------------------------------------------------------
    def _send(self, s: Session, data: bytes) -> None:
        w = s.writer
        if w is None or w.is_closing():
            return
        if w.transport.get_write_buffer_size() > MAX_BACKLOG:
            self.audit.event(
                "feed-dropped", s.who, level=logging.WARNING, why="the session's app fell behind"
            )
            w.close()
            s.writer = None
            return
        w.write(data)

    def broadcast(self, msg: JsonObject | bytes, exclude: Session | None = None) -> None:
        data = msg if isinstance(msg, bytes) else encode(msg)
        for s in list(self.sessions.values()):
            if s is not exclude:
                self._send(s, data)

    def hello(self, s: Session) -> JsonObject:
        return {
            "k": "hello",
            "role": s.who.role,
            "user": s.who.user,
            "rate": self.rate,
            "target": self.cockpit.target_label(),
            "lab_up": self.cockpit.lab_up(),
            "project": self._project(),
            "can_act": s.who.role == "operator" and not self.cockpit.read_only,
        }

    def _project(self) -> str:
        try:
            return self.cockpit.project_label()
        except EcmpError:
            return "-"

    # -- status and prober -----------------------------------------------------------------
    async def _poll_loop(self) -> None:
        while True:
            t0 = time.monotonic()
            st, error = None, None
            try:
                st = await asyncio.wait_for(self.cockpit.status(), STATUS_TIMEOUT)
            except TimeoutError:
                error = f"no status within {STATUS_TIMEOUT:.0f} s"
            except EcmpError as exc:
                error = str(exc)
            except Exception as exc:  # the feed must go on; the log has the details
                log.exception("status poll failed")
                error = f"status failed: {type(exc).__name__}"
            self.polls += 1
            if self.metrics is not None:
                self.metrics.set_status(st)
            self._status_line = encode(
                {
                    "k": "status",
                    "at": time.time(),
                    "error": error,
                    "status": st.to_json() if st else None,
                }
            )
            self.broadcast(self._status_line)
            eip = st.first_eip if st is not None else self._eip if error else None
            if eip != self._eip or (eip and self._stream is None and self._probe_task is None):
                self._eip = eip
                self._restart_probe()
            await asyncio.sleep(max(0.05, 1.0 - (time.monotonic() - t0)))

    def _restart_probe(self) -> None:
        if self._probe_task is not None:
            self._probe_task.cancel()
        self._probe_task = asyncio.get_running_loop().create_task(self._run_probe(self._eip))

    def _set_probe_state(self, state: str) -> None:
        self._probe_line = encode({"k": "probe", "state": state})
        self.broadcast(self._probe_line)

    async def _run_probe(self, eip: str | None) -> None:
        await self._stop_probe()
        if eip is None:
            self._set_probe_state("prober idle: nothing is deployed")
            return
        self._set_probe_state(f"starting prober at {self.rate:.0f}/s…")
        try:
            self._stream = await self.cockpit.probe(self.rate, self._on_sample)
        except EcmpError as exc:
            self._set_probe_state(f"prober failed: {exc}")
            return
        self._set_probe_state(f"probing at {self.rate:.0f}/s (shared by every session)")
        if self.metrics is not None:
            self.metrics.set_prober(True)

    async def _stop_probe(self) -> None:
        stream, self._stream = self._stream, None
        if self.metrics is not None:
            self.metrics.set_prober(False)
        if stream is not None:
            await stream.stop()

    def _on_sample(self, s: Sample) -> None:
        self.model.add(s)
        if self.metrics is not None:
            self.metrics.observe(s)
        self._pending.append(s)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            if self._pending:
                rows, self._pending = self._pending, []
                self.broadcast({"k": "samples", "s": [sample_row(s) for s in rows]})

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            self.model.prune(now)
            for rec in self.model.settle(now, fib_ms=self.cockpit.fib_ms):
                if self.metrics is not None:
                    self.metrics.action(rec)
                rid = next((i for i, r in self.records.items() if r is rec), None)
                if rid is None:
                    continue
                self._publish(rid)
                self.audit.event(
                    "action-result",
                    self._record_who.pop(rid, None),
                    node=rec.node,
                    action=rec.action,
                    result=rec.summary(),
                    convergence_ms=rec.convergence_ms,
                    recovery_ms=rec.recovery_ms,
                    failed=sum(rec.failed.values()),
                    fib_ms=rec.fib_ms,
                )
                del self.records[rid]
            # the model's own timeline only holds what is being measured here
            for rec in [r for r in self.model.timeline if r.settled]:
                self.model.timeline.remove(rec)

    def _publish(self, rid: int) -> None:
        rec = self.records[rid]
        self.broadcast({"k": "action", "id": rid, "record": asdict(rec)})

    # -- a session's app -------------------------------------------------------------------
    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session: Session | None = None
        try:
            first = await asyncio.wait_for(reader.readline(), 10)
            token = json.loads(first or b"{}").get("token", "")
            session = self.sessions.get(token) if isinstance(token, str) else None
            if session is None or session.writer is not None:
                log.warning("feed: refused a connection without a valid session token")
                return
            session.writer = writer
            self._send(session, encode(self.hello(session)))
            self._send(session, self._probe_line)
            if self._status_line is not None:
                self._send(session, self._status_line)
            for rid in self.records:
                self._send(
                    session, encode({"k": "action", "id": rid, "record": asdict(self.records[rid])})
                )
            while line := await reader.readline():
                try:
                    req = json.loads(line)
                except ValueError:
                    continue
                if isinstance(req, dict):
                    asyncio.get_running_loop().create_task(self._request(session, req))
        except (TimeoutError, ValueError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            if session is not None and session.writer is writer:
                session.writer = None
            writer.close()

    async def _request(self, s: Session, req: JsonObject) -> None:
        kind, rid = req.get("k"), req.get("req")
        try:
            if kind == "act":
                reply = await self._act(
                    s, str(req.get("node")), str(req.get("action")), bool(req.get("router"))
                )
            elif kind == "job":
                reply = await self._job(s, str(req.get("job")), req.get("values") or {})
            elif kind == "check":
                reply = {"data": await self.cockpit.check_nodes()}
            else:
                raise EcmpError(f"unknown request {kind!r}")
            self._send(s, encode({"k": "result", "req": rid, "ok": True, **reply}))
        except EcmpError as exc:
            self._send(s, encode({"k": "result", "req": rid, "ok": False, "message": str(exc)}))
        except Exception as exc:
            log.exception("feed request %r failed", kind)
            self._send(
                s,
                encode(
                    {
                        "k": "result",
                        "req": rid,
                        "ok": False,
                        "message": f"internal error: {type(exc).__name__}",
                    }
                ),
            )

    def _allowed(self, s: Session, what: str) -> None:
        if s.who.role != "operator":
            self.audit.event("action-refused", s.who, what=what, why="read-only session")
            raise ReadOnlyError(f"read-only session: {what} is not allowed")

    async def _act(self, s: Session, node: str, action: str, router: bool) -> JsonObject:
        what = f"{'router ' if router else ''}{action} {node}"
        self._allowed(s, what)
        # logged when asked, not only when done: an action that hangs is on record too
        self.audit.event(
            "action", s.who, node=node, action=action, router=router or None, outcome="asked"
        )
        cockpit = self.cockpit
        if router:
            run = lambda eff: cockpit.router_act(node, action, on_effect=eff)
        else:  # looked up once (an unknown name fails the record, and is audited)
            run = lambda eff: cockpit.act(node, operate.lookup(action), on_effect=eff)
        async with self._act_lock:
            rid, self._next_id = self._next_id, self._next_id + 1

            def changed(rec: ActionRecord) -> None:
                if rid not in self.records:
                    self.records[rid], self._record_who[rid] = rec, s.who
                self._publish(rid)

            s.actions += 1
            try:
                msg = await run_recorded(
                    self.model, node, action, run, by=s.who.user, on_change=changed
                )
            except EcmpError as exc:
                self.records.pop(rid, None)
                self.audit.event(
                    "action",
                    s.who,
                    node=node,
                    action=action,
                    router=router or None,
                    outcome="failed",
                    error=str(exc),
                )
                raise
            warnings, self.cockpit.warnings = list(self.cockpit.warnings), []
            self.audit.event(
                "action", s.who, node=node, action=action, router=router or None, outcome="done"
            )
            return {"message": msg, "warnings": warnings}

    async def _job(self, s: Session, job: str, values: JsonObject) -> JsonObject:
        if job not in JOBS:
            raise EcmpError(f"unknown job {job!r}")
        self._allowed(s, job)
        if self.job_running:
            raise EcmpError("a provisioning job is already running")
        self.job_running = True
        self.audit.event("job", s.who, job=job, outcome="started")
        try:
            detail = await self._run_job(job, values)
        except EcmpError as exc:
            self.audit.event("job", s.who, job=job, outcome="failed", error=str(exc))
            self.broadcast({"k": "job", "job": job, "error": str(exc)}, exclude=s)
            raise
        finally:
            self.job_running = False
        self.audit.event("job", s.who, job=job, outcome="done", detail=detail)
        self.broadcast({"k": "job", "job": job, "detail": detail}, exclude=s)
        return {"message": detail}

    async def _run_job(self, job: str, values: JsonObject) -> str:
        if job == "start-lab":
            return await self.cockpit.start_lab()
        if job == "deprovision":
            self._eip = None
            self._restart_probe()
            events = self.cockpit.deprovision()
            prov = None
        else:
            known = {"nodes", "metro", "plan", "operating_system", "bfd", "family", "daemon"}
            prov, events = self.cockpit.provision(**{k: v for k, v in values.items() if k in known})
        async for ev in events:
            self.broadcast({"k": "step", "event": asdict(ev)})
        if prov is None:
            return "everything removed"
        inv = prov.inventory
        assert inv is not None
        return f"{' and '.join(inv.eips.values())} announced by {len(inv.nodes)} node(s)" + (
            "" if prov.changed else " (no change)"
        )
