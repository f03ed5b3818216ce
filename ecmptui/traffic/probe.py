"""The traffic prober: requests a URL at a steady rate, a new TCP connection each time, and
attributes every answer to a backend (`X-Served-By`, else the page text).

One `httpx.Client` per process is reused for the whole run with keep-alive off (a client per
request would build a new SSL context every time); worker threads give the concurrency that
holds the rate while some requests wait out their timeout. Sample times are
`time.monotonic()`, which on Linux is comparable across processes, so a drill can line up
its actions with a prober running in another process and namespace.
"""

from __future__ import annotations

import errno
import math
import multiprocessing
import queue
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from ecmptui.traffic.samples import Sample, percentile, summarize  # noqa: F401 - re-exported

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


class _Engine:
    """Worker threads sharing one httpx.Client (keep-alive off: a new TCP connection per
    request) that send request k at t0 + k * stride, for k = first, first + step, ..."""

    def __init__(self, url: str, rate: float, timeout: float, duration: float | None,
                 t0: float, first: int, step: int, emit: Callable[[list[tuple]], None],
                 stop: threading.Event | Any) -> None:
        self.url, self.timeout, self.t0 = url, timeout, t0
        self.stride = 1.0 / rate
        # a count, not a time comparison: duration x rate requests exactly
        self.total = None if duration is None else max(1, round(duration * rate))
        self.emit, self.stop_event = emit, stop
        self._buf: list[tuple] = []
        self._next = first
        self._step = step
        self._lock = threading.Lock()
        per_process_rate = rate / step
        if per_process_rate > THROUGHPUT_MODE_RATE:
            # CPU-bound: every extra runnable thread costs throughput (GIL contention)
            self.threads = 4
        else:
            # enough threads to hold the rate while half the requests wait out their
            # timeout (a silently dead node)
            self.threads = max(4, min(192, math.ceil(per_process_rate * timeout * 0.6)))

    def _claim(self) -> float | None:
        with self._lock:
            k = self._next
            self._next += self._step
        if self.total is not None and k >= self.total:
            return None
        return self.t0 + k * self.stride

    def _worker(self, client: httpx.Client) -> None:
        request = client.build_request("GET", self.url)
        while not self.stop_event.is_set():
            due = self._claim()
            if due is None:
                return
            delay = due - time.monotonic()
            if delay > 0 and self.stop_event.wait(delay):
                return
            start = time.monotonic()
            try:
                resp = client.send(request)
                resp.read()
                latency = (time.monotonic() - start) * 1000
                err = f"http_{resp.status_code}" if resp.status_code >= 400 else None
                self._record((start, backend_of(resp), err, latency))
            except httpx.HTTPError as exc:
                self._record((start, None, classify(exc), (time.monotonic() - start) * 1000))

    def _record(self, item: tuple) -> None:
        with self._lock:
            self._buf.append(item)

    def _flush(self) -> None:
        with self._lock:
            batch, self._buf = self._buf, []
        if batch:
            self.emit(batch)

    def _flusher(self, done: threading.Event) -> None:
        # batches keep the per-sample cost of crossing a process boundary low
        while not done.wait(0.05):
            self._flush()
        self._flush()

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
        limits = httpx.Limits(max_connections=self.threads + 4, max_keepalive_connections=0)
        with httpx.Client(limits=limits, timeout=httpx.Timeout(self.timeout), trust_env=False,
                          headers={"Connection": "close", "User-Agent": "ecmptui-probe"}
                          ) as client:
            workers = [threading.Thread(target=self._worker, args=(client,), daemon=True)
                       for _ in range(self.threads)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()


def _process_main(args: tuple, out: Any, stop: Any) -> None:
    url, rate, timeout, duration, t0, first, step = args
    _Engine(url, rate, timeout, duration, t0, first, step, emit=out.put, stop=stop).run()
    out.put(None)


class Prober:
    """Sends `rate` requests per second to `url` until `duration` or `stop()`.

    `run(on_sample)` blocks and calls `on_sample` in the calling thread. Above ~800 req/s one
    Python process is the bottleneck, so `workers` processes (default: 2 above 800 req/s)
    share the schedule, each with its own reused client.
    """

    def __init__(self, url: str, rate: float = 100.0, timeout: float = 1.0,
                 duration: float | None = None, workers: int | None = None) -> None:
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

    def stop(self) -> None:
        self._stop_thread.set()
        if self._stop_proc is not None:
            self._stop_proc.set()

    def run(self, on_sample: Callable[[Sample], None]) -> None:
        t0 = time.monotonic() + 0.05
        if self.workers == 1:
            out: queue.SimpleQueue = queue.SimpleQueue()
            engine = _Engine(self.url, self.rate, self.timeout, self.duration, t0, 0, 1,
                             out.put, self._stop_thread)

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
        procs = [ctx.Process(target=_process_main, daemon=True, args=(
            (self.url, self.rate, self.timeout, self.duration, t0, i, self.workers),
            mp_out, self._stop_proc)) for i in range(self.workers)]
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
            else:
                for fields in item:
                    on_sample(Sample(*fields))
