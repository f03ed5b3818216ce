"""The prober against real sockets on loopback, and the failover analysis."""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from ecmptui.traffic.failover import analyse, first_answer_ms, steady_since
from ecmptui.traffic.probe import Prober, Sample, summarize
from serving import wait_until


def run_probe(url: str, n: int = 20, rate: float = 200.0, timeout: float = 0.3) -> list[Sample]:
    samples: list[Sample] = []
    Prober(url, rate=rate, timeout=timeout, duration=n / rate).run(samples.append)
    return samples


@pytest.fixture
def http_server() -> Iterator[Any]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"Welcome to nginx 7\n"
            self.send_response(200)
            if self.path != "/nohdr":
                self.send_header("X-Served-By", "unit-node")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # the prober opens many connections at once
        daemon_threads = True

    srv = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_answers_attributed_by_header_then_page(http_server: Any) -> None:
    samples = run_probe(http_server + "/")
    assert len(samples) == 20 and {s.backend for s in samples} == {"unit-node"}
    assert all(s.error is None for s in samples)
    assert {s.backend for s in run_probe(http_server + "/nohdr", n=5)} == {"nginx 7"}


def test_each_request_is_a_new_connection(http_server: Any) -> None:
    # count accepted connections on a raw listener that answers once per connection
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(64)
    accepted: list[socket.socket] = []

    def serve() -> None:
        while len(accepted) < 10:
            c, _ = lst.accept()
            accepted.append(c)
            c.recv(4096)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Served-By: raw\r\n\r\nok")
            c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    samples = run_probe(f"http://127.0.0.1:{lst.getsockname()[1]}/", n=10, rate=50)
    t.join(2)
    lst.close()
    assert len(accepted) == 10 and all(s.backend == "raw" for s in samples)


def test_refused_is_classified() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    samples = run_probe(f"http://127.0.0.1:{port}/", n=5)
    assert {x.error for x in samples} == {"refused"}


def test_timeout_is_classified() -> None:
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(64)  # accepts (kernel backlog) but never answers
    samples = run_probe(f"http://127.0.0.1:{lst.getsockname()[1]}/", n=5, timeout=0.2)
    lst.close()
    assert {x.error for x in samples} == {"timeout"}


def test_reset_is_classified() -> None:
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(64)
    stop = threading.Event()

    def rst() -> None:
        lst.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = lst.accept()
            except OSError:
                continue
            c.recv(4096)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()  # linger 0: RST instead of FIN

    t = threading.Thread(target=rst, daemon=True)
    t.start()
    samples = run_probe(f"http://127.0.0.1:{lst.getsockname()[1]}/", n=5, rate=50)
    stop.set()
    t.join(1)
    lst.close()
    assert {x.error for x in samples} == {"reset"}


def test_summary_shape() -> None:
    samples = [
        Sample(0.0, "a", None, 1.0),
        Sample(0.5, "b", None, 3.0),
        Sample(1.0, None, "refused", 0.2),
    ]
    s = summarize(samples, 1.0)
    assert s == {
        "requests": 3,
        "failed": 1,
        "by_backend": {"a": 1, "b": 1},
        "errors": {"refused": 1},
        "rate": 3.0,
        "latency_ms": {"p50": 1.0, "p99": 3.0},
    }


def _series(start: int, end: int, fn: Any) -> list[Sample]:
    """One sample every 10 ms from start to end (in units of 10 ms): fn(i, t)."""
    return [fn(i, i / 100) for i in range(start, end)]


def test_analysis_of_a_silent_failure() -> None:
    # two backends alternate; b goes silent at t=10: its requests time out until 12.5
    def fn(i: Any, t: Any) -> Any:
        if i % 2 == 0:
            return Sample(t, "a", None, 2.0)
        if 1000 <= i < 1250:
            return Sample(t, None, "timeout", 1000.0)
        return Sample(t, "b" if i < 1000 else "a", None, 2.0)

    samples = _series(900, 1400, fn)
    fo = analyse(samples, 10.0, "b", until=14.0)
    assert fo.last_affected_ms is None
    assert fo.convergence_ms is not None and fo.steady_ms is not None
    assert 2480 <= fo.convergence_ms <= 2500 and 2490 <= fo.steady_ms <= 2510
    assert fo.failed == {"timeout": 125}
    assert fo.before == {"a": 50, "b": 50} and set(fo.after) == {"a"}


def test_analysis_of_a_clean_drain_and_of_no_convergence() -> None:
    # b still answers the request sent 3 ms after the action, then never again
    samples = _series(0, 300, lambda i, t: Sample(t, "b" if i <= 101 and i % 2 else "a", None, 1.0))
    fo = analyse(samples, 1.0 - 0.0001, "b", until=3.0)
    assert fo.failed == {} and fo.last_affected_ms is not None and fo.last_affected_ms <= 11
    never = _series(
        0,
        300,
        lambda i, t: (
            Sample(t, None, "refused", 1) if i >= 100 and i % 2 else Sample(t, "a", None, 1)
        ),
    )
    fo = analyse(never, 1.0, "b", until=3.0)
    assert fo.convergence_ms is None and fo.steady_ms is None and fo.failed["refused"] == 100


def test_steady_detection_waits_for_in_flight_requests() -> None:
    ok = [Sample(t / 100, "a", None, 1) for t in range(0, 300)]
    assert steady_since(ok, 3.0, 1.0, "b", timeout_s=1.0)
    # a request sent at 1.5 s that times out: not steady while it is inside the window
    late = ok + [Sample(1.5, None, "timeout", 1000)]
    assert not steady_since(late, 3.0, 1.0, "b", timeout_s=1.0)
    assert first_answer_ms(ok, 1.0, "a") == 0.0 and first_answer_ms(ok, 1.0, "b") is None


@pytest.mark.parametrize(
    "args,message",
    [
        (["--rate", "-5"], "must be a positive number"),
        (["--timeout", "nan"], "must be a positive number"),
        (["ftp://x/"], "not an http(s) URL"),
    ],
)
def test_bad_probe_input_is_one_line_exit_2(args: Any, message: str) -> None:
    proc = run_cli("probe", "--duration", "1", *args)
    assert proc.returncode == 2 and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_probe_with_url_and_no_netns_needs_no_settings(http_server: Any, tmp_path: Path) -> None:
    # no lab named zzz exists and the config file is broken: neither may be consulted
    bad = tmp_path / "bad.toml"
    bad.write_text("this is not toml [")
    proc = run_cli(
        "--config",
        str(bad),
        "--lab",
        "zzz",
        "probe",
        "--no-netns",
        "--json",
        "--rate",
        "50",
        "--duration",
        "0.2",
        http_server + "/",
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["by_backend"] == {"unit-node": 10}


def test_probe_stream_pins_its_namespace() -> None:
    from ecmptui.traffic.probe_stream import probe_argv

    argv = probe_argv("http://203.0.113.9/", 200, 1.0, "labx-client")
    assert argv[:4] == ["ip", "netns", "exec", "labx-client"]
    assert argv[-3:] == ["--netns", "labx-client", "http://203.0.113.9/"]


def test_traffic_model_measures_a_drain_seen_steady_at_the_window_edge() -> None:
    from ecmptui.traffic.model import TrafficModel

    m = TrafficModel(settle_s=1.0, timeout_s=1.0)
    # 100 req/s; b still answers the request sent at 10.01 s, then only a
    for i in range(900, 1400):
        m.add(Sample(i / 100, "b" if (i % 2 and i <= 1001) else "a", None, 1.0))
    rec = m.begin("b", "withdraw", t=10.0)
    rec.outcome = "done"
    # the steady window [10.0101, 11.0101] starts just after b's last answer
    settled = m.settle(now=12.0101)
    assert settled == [rec] and rec.convergence_ms is not None
    assert rec.convergence_ms <= 10 and rec.failed == {}


def test_a_slow_action_still_counts_the_flows_it_broke_after_it_returned() -> None:
    from ecmptui.traffic.flows import FlowEvent
    from ecmptui.traffic.model import FLOW_WINDOW_S, TrafficModel

    m = TrafficModel()
    for flow, backend in enumerate("abab"):
        m.add_flow(FlowEvent(1.0 + flow / 10, flow, "open", backend))
    rec = m.begin("b", "announce", t=10.0)  # measured from the command's start...
    m.add(Sample(11.0, "b", None, 1.0))  # (b answers: the announce is measured)
    m.settle(now=12.5)  # ...which returned only at 12.5
    assert rec.flows is None and rec.done_at is None
    rec.outcome = "done"
    m.settle(now=12.5)
    assert rec.done_at == 12.5 and rec.settled
    # the node's flows break 4 s after the start, within the window after the return
    m.add_flow(FlowEvent(14.0, 1, "break", "b", "reset"))
    m.add_flow(FlowEvent(14.1, 3, "break", "b", "reset"))
    m.add_flow(FlowEvent(14.2, 0, "break", "a", "reset"))
    m.settle(now=12.5 + FLOW_WINDOW_S - 0.1)
    assert rec.flows is None  # not counted before the window is over
    m.settle(now=12.5 + FLOW_WINDOW_S + 0.1)
    assert rec.flows == {"flows": 4, "on_node": 2, "affected": 2, "bystanders": 1, "moved": 0}


async def test_a_stream_with_a_callback_keeps_no_samples_of_its_own(http_server: Any) -> None:
    """The dashboard keeps its own bounded store: the stream must not keep every sample as
    well (hours at 1,000/s), while a drill, without a callback, gets them all."""
    from ecmptui.traffic.probe_stream import ProbeStream

    got: list = []
    stream = ProbeStream(http_server + "/", rate=200, on_sample=got.append)
    await stream.start()
    await wait_until(lambda: stream.received > 10)
    await stream.stop()
    assert len(got) == stream.received > 10 and stream.samples == []
    kept = ProbeStream(http_server + "/", rate=200)
    await kept.start()
    await wait_until(lambda: kept.received > 10)
    await kept.stop()
    assert len(kept.samples) == kept.received > 10
