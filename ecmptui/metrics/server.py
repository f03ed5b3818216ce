"""The HTTP endpoint Prometheus scrapes: prometheus_client's WSGI app on a socket of our
own, so the socket can be bound before a prober moves into the lab's namespace (it stays
in the namespace it was made in: the host's, where Prometheus is)."""

from __future__ import annotations

import os
import re
import socket
import sys
import threading
from wsgiref.simple_server import WSGIRequestHandler

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from ecmptui.errors import EcmpError
from ecmptui.listen import parse_listen
from ecmptui.metrics.probe_metrics import ProbeMetrics

FD_ENV = "ECMPTUI_METRICS_FD"  # a listening socket handed to a re-executed prober


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Scrapes are not logged (one a few seconds, forever)."""


def bind(listen: str, flag: str = "--metrics-listen") -> socket.socket:
    """A listening socket for HOST:PORT (port 0: the kernel picks one)."""
    host, port = parse_listen(listen, flag, any_port=True)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=16)
    except OSError as exc:
        raise EcmpError(f"{flag} {listen}: {exc.strerror or exc}") from None


class MetricsServer:
    """Serves `registry` at /metrics on `sock` in a thread of its own until `stop()`."""

    def __init__(self, registry: CollectorRegistry, sock: socket.socket) -> None:
        self.sock = sock
        host, port = sock.getsockname()[:2]
        self.httpd = ThreadingWSGIServer((host, port), _Quiet, bind_and_activate=False)
        self.httpd.socket.close()
        self.httpd.socket = sock
        self.httpd.server_name, self.httpd.server_port = host, port
        self.httpd.setup_environ()
        self.httpd.set_app(make_wsgi_app(registry))
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="metrics", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


def inherited() -> socket.socket | None:
    """The listening socket a parent bound for this process (`FD_ENV`), if any."""
    fd = os.environ.pop(FD_ENV, None)
    if fd is None or not fd.isdigit():
        return None
    sock = socket.socket(fileno=int(fd))
    sock.set_inheritable(False)
    return sock


VANTAGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def vantage_name(given: str | None) -> str:
    """The `vantage` label: as given (checked), else this host's name."""
    name = given if given is not None else socket.gethostname().split(".")[0] or "localhost"
    if not VANTAGE_RE.fullmatch(name):
        raise EcmpError(
            f"--vantage {name!r}: use 1-63 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    return name


def start(
    listen: str | None, metrics: ProbeMetrics, flag: str = "--metrics-listen"
) -> MetricsServer:
    """Serve `metrics` on `listen` (or on the socket a parent bound: `inherited()`), and say
    where on stderr."""
    sock = inherited() or bind(listen or "", flag)
    server = MetricsServer(metrics.registry, sock).start()
    print(
        f"ecmptui: metrics at {server.url} (vantage {metrics.vantage})", file=sys.stderr, flush=True
    )
    return server
