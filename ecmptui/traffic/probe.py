"""The traffic prober: requests a URL at a steady rate, a new TCP connection each time, and
attributes every answer to a backend (`X-Served-By`, else the page text).

For plain http:// (the EIP) each request is a raw socket: connect, one GET with
`Connection: close`, read to the end; that costs a fraction of an HTTP client's work per
request, which is what sets the ceiling at thousands of new connections a second. https://
goes through one `httpx.Client` per process (keep-alive off). Worker threads give the
concurrency that holds the rate while some requests wait out their timeout.

The schedule is honest: request k is due at t0 + k / rate; when the prober cannot keep up,
it does not run longer to catch up (the duration is kept) and it says so: how many were
sent of those due, the achieved rate and how late they went out (`Schedule`). Sample times
are the real send times, `time.monotonic()`, which on Linux is comparable across processes,
so a drill can line up its actions with a prober in another process and namespace.
"""

from __future__ import annotations

import errno
import math
import multiprocessing
import queue
import random
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from ecmptui.jsonish import JsonObject
from ecmptui.traffic.samples import Sample, percentile, summarize  # noqa: F401 - re-exported
from ecmptui.traffic.wire import PAGE_RE_B, SERVED_BY, raw_classify

PAGE_RE = re.compile(r"Welcome to nginx (\d+)")
MAX_RATE = 20000.0
MAX_DURATION = 24 * 3600.0
# Above this many requests/s per process the prober is CPU-bound (measured ~1,100/s per
# process on 2 cores): it runs few threads, so requests that time out lower the rate.
THROUGHPUT_MODE_RATE = 400.0


def classify(exc: BaseException) -> str:
    """refused / reset / timeout / other, from an httpx exception and its causes."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ConnectionRefusedError):
            return "refused"
        if isinstance(cur, (ConnectionResetError, BrokenPipeError)):
            return "reset"
        if isinstance(cur, TimeoutError):
            return "timeout"
        if isinstance(cur, OSError) and cur.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return "unreachable"
        cur = cur.__cause__ or cur.__context__
    text = str(exc).lower()
    if "refused" in text:
        return "refused"
    if "reset" in text or "disconnected without sending" in text:
        return "reset"
    return "other"


def backend_of(resp: httpx.Response) -> str | None:
    served = resp.headers.get("x-served-by")
    if served:
        return served
    m = PAGE_RE.search(resp.text)
    return f"nginx {m.group(1)}" if m else None


class RawGet:
    """One GET over a new TCP connection, without an HTTP client: (backend, error)."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        self.addr = (parts.hostname or "", parts.port or 80)
        self.family = socket.AF_INET6 if ":" in self.addr[0] else socket.AF_INET
        self.timeout = timeout
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "User-Agent: ecmptui-probe\r\nConnection: close\r\n\r\n"
        ).encode()

    def __call__(self) -> tuple[str | None, str | None]:
        sock = socket.socket(self.family, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        deadline = time.monotonic() + self.timeout
        try:
            sock.connect(self.addr)
            sock.sendall(self.request)
            data = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
                if time.monotonic() > deadline:
                    return None, "timeout"
        except OSError as exc:
            return None, raw_classify(exc)
        finally:
            sock.close()
        if not data.startswith(b"HTTP/"):
            return None, "reset" if not data else "other"
        try:
            status = int(data[9:12])
        except ValueError:
            return None, "other"
        if status >= 400:
            return None, f"http_{status}"
        m = SERVED_BY.search(data)
        if m:
            return m.group(1).decode(errors="replace").strip(), None
        page = PAGE_RE_B.search(data)
        return (f"nginx {page.group(1).decode()}" if page else None), None


@dataclass
class Schedule:
    """How well the prober kept its schedule: requests due and sent, the achieved rate,
    and how late requests went out (a reservoir of lags, in seconds)."""

    rate: float
    due: int = 0
    sent: int = 0
    elapsed: float = 0.0
    lags: list[float] = field(default_factory=list)
    _seen: int = 0

    RESERVOIR = 20000

    def add_lags(self, lags: list[float]) -> None:
        for lag in lags:
            self._seen += 1
            if len(self.lags) < self.RESERVOIR:
                self.lags.append(lag)
            else:
                j = random.randrange(self._seen)
                if j < self.RESERVOIR:
                    self.lags[j] = lag

    def summary(self) -> JsonObject:
        achieved = self.sent / self.elapsed if self.elapsed else 0.0
        p50, p99 = percentile(self.lags, 50), percentile(self.lags, 99)
        slipped = self.sent < self.due * 0.98 or (p99 is not None and p99 > 0.05)
        return {
            "target_rate": self.rate,
            "achieved_rate": round(achieved, 1),
            "due": self.due,
            "sent": self.sent,
            "slipped": slipped,
            "lag_ms": {"p50": _ms(p50), "p99": _ms(p99), "max": _ms(max(self.lags, default=None))},
        }


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 2)


class _Engine:
    """Worker threads that send request k at t0 + k * stride, for k = first, first + step,
    ... until `duration` has passed: a request whose time has come goes out at once, late if
    need be; one that would go out after the end is not sent (the run keeps its length).
    Each emitted batch is (samples, lags of the requests sent, requests due)."""

    def __init__(
        self,
        url: str,
        rate: float,
        timeout: float,
        duration: float | None,
        t0: float,
        first: int,
        step: int,
        emit: Callable[[tuple], None],
        stop: threading.Event | Any,
    ) -> None:
        self.url, self.timeout, self.t0 = url, timeout, t0
        self.stride = 1.0 / rate
        self.end = None if duration is None else t0 + duration
        self.emit, self.stop_event = emit, stop
        self._buf: list[tuple] = []
        self._lags: list[float] = []
        self._next = first
        self._step = step
        self._lock = threading.Lock()
        self.raw = RawGet(url, timeout) if url.startswith("http://") else None
        per_process_rate = rate / step
        if per_process_rate > THROUGHPUT_MODE_RATE:
            # CPU-bound: a few more threads than cores keep connects in flight
            self.threads = 8 if self.raw else 4
        else:
            # enough threads to hold the rate while half the requests wait out their
            # timeout (a silently dead node)
            self.threads = max(4, min(192, math.ceil(per_process_rate * timeout * 0.6)))

    def _claim(self) -> float | None:
        with self._lock:
            k = self._next
            self._next += self._step
        due = self.t0 + k * self.stride
        if self.end is not None and (due >= self.end or time.monotonic() >= self.end):
            return None
        return due

    def _worker(self, client: httpx.Client | None) -> None:
        request = client.build_request("GET", self.url) if client is not None else None
        while not self.stop_event.is_set():
            due = self._claim()
            if due is None:
                return
            delay = due - time.monotonic()
            if delay > 0 and self.stop_event.wait(delay):
                return
            start = time.monotonic()
            if self.raw is not None:
                backend, err = self.raw()
                self._record((start, backend, err, (time.monotonic() - start) * 1000), start - due)
                continue
            assert client is not None and request is not None
            try:
                resp = client.send(request)
                resp.read()
                latency = (time.monotonic() - start) * 1000
                err = f"http_{resp.status_code}" if resp.status_code >= 400 else None
                self._record((start, backend_of(resp), err, latency), start - due)
            except httpx.HTTPError as exc:
                self._record(
                    (start, None, classify(exc), (time.monotonic() - start) * 1000), start - due
                )

    def _record(self, item: tuple[Any, ...], lag: float) -> None:
        with self._lock:
            self._buf.append(item)
            self._lags.append(max(0.0, lag))

    def _due_so_far(self) -> int:
        """Requests of this engine whose time has come (or all, at the end)."""
        now = time.monotonic() if self.end is None else min(time.monotonic(), self.end)
        if now <= self.t0:
            return 0
        total = math.ceil((now - self.t0) / self.stride)
        first = self._next % self._step
        return max(0, math.ceil((total - first) / self._step))

    def _flush(self, final: bool = False) -> None:
        with self._lock:
            batch, self._buf = self._buf, []
            lags, self._lags = self._lags, []
        if batch or final:
            self.emit((batch, lags, self._due_so_far()))

    def _flusher(self, done: threading.Event) -> None:
        # batches keep the per-sample cost of crossing a process boundary low
        while not done.wait(0.05):
            self._flush()
        self._flush(final=True)

    def run(self) -> None:
        done = threading.Event()
        flusher = threading.Thread(target=self._flusher, args=(done,), daemon=True)
        flusher.start()
        try:
            self._run_workers()
        finally:
            done.set()
            flusher.join()

    def _run_workers(self) -> None:
        if self.raw is not None:
            self._run_threads(None)
            return
        limits = httpx.Limits(max_connections=self.threads + 4, max_keepalive_connections=0)
        with httpx.Client(
            limits=limits,
            timeout=httpx.Timeout(self.timeout),
            trust_env=False,
            headers={"Connection": "close", "User-Agent": "ecmptui-probe"},
        ) as client:
            self._run_threads(client)

    def _run_threads(self, client: httpx.Client | None) -> None:
        """`threads` workers sharing `client` (None: raw sockets), until they all end."""
        workers = [
            threading.Thread(target=self._worker, args=(client,), daemon=True)
            for _ in range(self.threads)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()


def _process_main(args: tuple[Any, ...], out: Any, stop: Any) -> None:
    url, rate, timeout, duration, t0, first, step = args
    _Engine(
        url, rate, timeout, duration, t0, first, step, emit=lambda b: out.put((first, b)), stop=stop
    ).run()
    out.put(None)


class Prober:
    """Sends `rate` requests per second to `url` until `duration` or `stop()`.

    `run(on_sample)` blocks and calls `on_sample` in the calling thread. Above ~800 req/s one
    Python process is the bottleneck, so `workers` processes (default: 2 above 800 req/s)
    share the schedule, each with its own reused client.
    """

    def __init__(
        self,
        url: str,
        rate: float = 100.0,
        timeout: float = 1.0,
        duration: float | None = None,
        workers: int | None = None,
    ) -> None:
        if not 0 < rate <= MAX_RATE:
            raise ValueError(f"rate must be between 0 and {MAX_RATE:.0f} requests/s")
        if not 0 < timeout <= 60:
            raise ValueError("timeout must be between 0 and 60 s")
        if duration is not None and not 0 < duration <= MAX_DURATION:
            raise ValueError("duration must be between 0 and 24 h")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.url, self.rate, self.timeout, self.duration = url, rate, timeout, duration
        self.workers = workers or (2 if rate > 800 else 1)
        if not 1 <= self.workers <= 8:
            raise ValueError("workers must be 1-8")
        self._stop_thread = threading.Event()
        self._stop_proc: Any = None
        self.schedule = Schedule(rate)
        self._due: dict[int, int] = {}

    def stop(self) -> None:
        self._stop_thread.set()
        if self._stop_proc is not None:
            self._stop_proc.set()

    def run(self, on_sample: Callable[[Sample], None]) -> None:
        t0 = time.monotonic() + 0.05
        try:
            self._run(t0, on_sample)
        finally:
            self.schedule.elapsed = max(0.0, time.monotonic() - t0)
            if self.duration is not None:
                self.schedule.elapsed = min(self.schedule.elapsed, self.duration)

    def _run(self, t0: float, on_sample: Callable[[Sample], None]) -> None:
        if self.workers == 1:
            out: queue.SimpleQueue = queue.SimpleQueue()
            engine = _Engine(
                self.url,
                self.rate,
                self.timeout,
                self.duration,
                t0,
                0,
                1,
                lambda b: out.put((0, b)),
                self._stop_thread,
            )

            def body() -> None:
                engine.run()
                out.put(None)

            threading.Thread(target=body, daemon=True).start()
            self._drain(out, 1, on_sample)
            return
        ctx = multiprocessing.get_context("fork")
        mp_out = ctx.Queue()
        self._stop_proc = ctx.Event()
        if self._stop_thread.is_set():
            self._stop_proc.set()
        procs = [
            ctx.Process(
                target=_process_main,
                daemon=True,
                args=(
                    (self.url, self.rate, self.timeout, self.duration, t0, i, self.workers),
                    mp_out,
                    self._stop_proc,
                ),
            )
            for i in range(self.workers)
        ]
        for p in procs:
            p.start()
        try:
            self._drain(mp_out, self.workers, on_sample)
        finally:
            self._stop_proc.set()
            for p in procs:
                p.join(timeout=self.timeout + 2)
                if p.is_alive():
                    p.kill()

    def _drain(self, out: Any, producers: int, on_sample: Callable[[Sample], None]) -> None:
        finished = 0
        while finished < producers:
            try:
                item = out.get(timeout=0.2)
            except queue.Empty:
                continue
            if item is None:
                finished += 1
                continue
            engine, (batch, lags, due) = item
            self._due[engine] = due
            self.schedule.due = sum(self._due.values())
            self.schedule.sent += len(batch)
            self.schedule.add_lags(lags)
            for fields in batch:
                on_sample(Sample(*fields))
