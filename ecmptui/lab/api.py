"""The lab's Metal API over HTTPS on 127.0.0.1: routing, auth and the error shape."""

from __future__ import annotations

import hmac
import json
import logging
import re
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ecmptui.jsonish import JsonObject
from ecmptui.lab.cloud import METRO, OPERATING_SYSTEMS, PLANS, ApiError, Cloud

log = logging.getLogger("ecmptui.lab.api")

ID = r"(?P<id>[^/]+)"
Handler = Callable[[Cloud, dict[str, str], dict], Any]

# (method, path regex, handler); path is normalised: no leading/trailing or doubled slashes.
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    (m, re.compile(f"^{p}$"), h)
    for m, p, h in [
        ("GET", "user", lambda c, a, b: c.user()),
        ("GET", "projects", lambda c, a, b: c.list_projects()),
        ("GET", f"projects/{ID}", lambda c, a, b: c.get_project(a["id"])),
        ("GET", "plans", lambda c, a, b: {"plans": PLANS}),
        ("GET", "locations/metros", lambda c, a, b: {"metros": [METRO]}),
        ("GET", f"locations/metros/{ID}", lambda c, a, b: c.get_metro(a["id"])),
        ("GET", "facilities", lambda c, a, b: {"facilities": []}),
        ("GET", "operating-systems", lambda c, a, b: {"operating_systems": OPERATING_SYSTEMS}),
        ("GET", "ssh-keys", lambda c, a, b: c.list_ssh_keys(None)),
        ("POST", "ssh-keys", lambda c, a, b: (201, c.add_ssh_key(None, b))),
        ("GET", f"ssh-keys/{ID}", lambda c, a, b: c.get_ssh_key(a["id"])),
        ("DELETE", f"ssh-keys/{ID}", lambda c, a, b: c.delete_ssh_key(a["id"])),
        ("GET", f"projects/{ID}/ssh-keys", lambda c, a, b: c.list_ssh_keys(a["id"])),
        ("POST", f"projects/{ID}/ssh-keys", lambda c, a, b: (201, c.add_ssh_key(a["id"], b))),
        ("GET", f"projects/{ID}/devices", lambda c, a, b: c.list_devices(a["id"], b)),
        ("POST", f"projects/{ID}/devices", lambda c, a, b: (201, c.create_device(a["id"], b))),
        ("GET", f"devices/{ID}", lambda c, a, b: c.get_device(a["id"])),
        ("PUT", f"devices/{ID}", lambda c, a, b: c.update_device(a["id"], b)),
        ("DELETE", f"devices/{ID}", lambda c, a, b: c.delete_device(a["id"])),
        ("POST", f"devices/{ID}/actions", lambda c, a, b: (202, c.device_action(a["id"], b))),
        ("GET", f"devices/{ID}/ips", lambda c, a, b: c.device_ips(a["id"])),
        ("GET", f"projects/{ID}/ips", lambda c, a, b: c.list_ips(a["id"], b)),
        ("POST", f"projects/{ID}/ips", lambda c, a, b: (201, c.reserve_ip(a["id"], b))),
        ("GET", f"ips/{ID}", lambda c, a, b: c.get_ip(a["id"])),
        ("DELETE", f"ips/{ID}", lambda c, a, b: c.delete_ip(a["id"])),
        ("POST", f"projects/{ID}/bgp-configs", lambda c, a, b: c.enable_bgp(a["id"], b)),
        ("GET", f"projects/{ID}/bgp-config", lambda c, a, b: c.get_bgp_config(a["id"])),
        ("GET", f"bgp-configs/{ID}", lambda c, a, b: c.get_bgp_config_by_id(a["id"])),
        ("GET", f"projects/{ID}/bgp/sessions", lambda c, a, b: c.project_sessions(a["id"])),
        ("GET", f"devices/{ID}/bgp/sessions", lambda c, a, b: c.list_sessions(a["id"])),
        ("POST", f"devices/{ID}/bgp/sessions", lambda c, a, b: (201, c.create_session(a["id"], b))),
        ("GET", f"bgp/sessions/{ID}", lambda c, a, b: c.get_session(a["id"])),
        ("DELETE", f"bgp/sessions/{ID}", lambda c, a, b: c.delete_session(a["id"])),
        ("GET", f"devices/{ID}/bgp/neighbors", lambda c, a, b: c.neighbors(a["id"])),
        ("GET", "lab/status", lambda c, a, b: c.summary()),
    ]
]
MAX_BODY = 1 << 20


def normalise(path: str) -> str:
    """`//projects/x/` and `/projects/x` both become `projects/x`."""
    return "/".join(part for part in urlsplit(path).path.split("/") if part)


def dispatch(cloud: Cloud, method: str, path: str, body: JsonObject) -> tuple[int, Any]:
    """Find the route for method+path and run it; returns (status, JSON body or None).
    A GET's handler gets the query parameters (page, per_page, type, ...) as its body."""
    norm = normalise(path)
    if method == "GET":
        body = {k: v[-1] for k, v in parse_qs(urlsplit(path).query).items()}
    allowed = False
    for m, pattern, handler in ROUTES:
        match = pattern.match(norm)
        if not match:
            continue
        allowed = True
        if m != method:
            continue
        result = handler(cloud, match.groupdict(), body)
        if method != "GET":
            with cloud.lock:
                cloud.save()
        if isinstance(result, tuple):
            return result
        return (204, None) if result is None else (200, result)
    raise ApiError(405 if allowed else 404, "Method not allowed" if allowed else "Not found")


class _Handler(BaseHTTPRequestHandler):
    server: LabApiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:  # the token is a header: never logged
        log.debug("%s %s", self.address_string(), fmt % args)

    def _send(self, status: int, payload: Any) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        try:
            raw_length = self.headers.get("Content-Length") or "0"
            if not (raw_length.isascii() and raw_length.isdigit()):  # "²" is a digit too
                self.close_connection = True  # the body's end is unknown: do not read on
                raise ApiError(400, "Content-Length must be a number of bytes")
            length = int(raw_length)
            if length > MAX_BODY:
                raise ApiError(413, "request body too large")
            raw = self.rfile.read(length) if length else b""
            token = self.headers.get("X-Auth-Token") or ""
            if not hmac.compare_digest(token.encode(), self.server.token.encode()):
                raise ApiError(401, "Invalid authentication token")
            body: Any = {}
            if raw.strip():
                kind = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
                if kind != "application/json":
                    raise ApiError(
                        415,
                        "request body must be application/json (Content-Type: "
                        f"{kind or 'missing'})",
                    )
                try:
                    body = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise ApiError(422, "request body is not valid JSON") from exc
                except RecursionError as exc:
                    raise ApiError(422, "request body is nested too deeply") from exc
                if not isinstance(body, dict):
                    raise ApiError(422, "request body must be a JSON object")
            status, payload = dispatch(self.server.cloud, method, self.path, body)
        except ApiError as exc:
            status, payload = exc.status, {"errors": exc.messages}
        except Exception:
            log.exception("%s %s failed", method, normalise(self.path))
            status, payload = 500, {"errors": ["internal error in the lab API"]}
        self._send(status, payload)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_PUT(self) -> None:
        self._handle("PUT")


class LabApiServer(ThreadingHTTPServer):
    """HTTPS server bound to 127.0.0.1 serving one Cloud."""

    daemon_threads = True

    def __init__(self, cloud: Cloud, token: str, port: int, cert: Path, key: Path) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.cloud, self.token = cloud, token
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert, key)
        # the handshake then happens in the request's own thread, not in the accept loop
        self.socket = ctx.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def serve_in_thread(self) -> threading.Thread:
        t = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True, name="lab-api"
        )
        t.start()
        return t
