"""Bad input, everywhere: one line on stderr and exit code 2 from the CLI and the config
(checked before any work starts), a 4xx JSON error from the lab API. Never a traceback."""

from __future__ import annotations

import http.client
import json
import os
import ssl
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from ecmptui.lab.control import LabInfo

NOT_UP = "ecmpz"  # a lab that is never up: input must be refused before it is looked up
URL = "http://127.0.0.1:9/"

CLI_CASES = [
    (["probe", "http://127.0.0.1:abc/"], "not a valid URL"),
    (["probe", "http://[::1/"], "not a valid URL"),
    (["probe", "http://127.0.0.1/\r\nX-Injected: 1"], "control characters"),
    (["probe", "http://" + "a" * 5000 + "/"], "URL too long"),
    (["probe", "http://" + "a" * 300 + ".example/"], "host name too long"),
    (["probe", "ftp://127.0.0.1/"], "not an http(s) URL"),
    (["probe", "http:///just-a-path"], "has no host"),
    (["probe", "--rate", "0", URL], "--rate 0 probes nothing: it is for --flows N alone"),
    (["probe", "--flows", "9000", URL], "--flows 9000: must be 0-5000"),
    (["--flows", "-1"], "--flows -1: must be 0-5000"),
    (["probe", "--rate", "nan", URL], "must be a positive number"),
    (["probe", "--duration", "-1", URL], "must be a positive number"),
    (["probe", "--timeout", "inf", URL], "must be a positive number"),
    (["lab", "up", "--port", "70000"], "must be 0-65535"),
    (["lab", "up", "--port", "abc"], "not a port number"),
    (["--lab", "Bad-Name", "lab", "status"], "invalid lab name"),
    (["--lab", "ab\n", "lab", "status"], "invalid lab name"),
    (["--config", "/no/such/ecmptui.toml", "status"], "config file not found"),
    (["--config", "/", "status"], "is a directory"),
    (["inventory", "export", "-o", "/no/such/dir/x.toml"], "no such directory"),
    (["inventory", "export", "-o", "/tmp"], "is a directory"),
    (["drill", "--report", "/no/such/dir/r.md"], "no such directory"),
    (["provision", "--nodes", "0"], "must be 1-16"),
    (["provision", "--nodes", "abc"], "invalid int value"),
    (["node", "fault", "n1", "frobnicate"], "invalid choice"),
    (["router", "fault", "core3", "isolate"], "invalid choice"),
    (["serve", "--listen", "nonsense"], "expected HOST:PORT"),
    (["serve", "--listen", "[::1:2222"], "expected HOST:PORT or [IPv6]:PORT"),
    (["serve", "--listen", "a b:2222"], "is not a host name or address"),
    (["--wait", "-1", "status"], "must be a positive number"),
    (["frobnicate"], "invalid choice"),
    (["--config", "/dev/zero", "status"], "not a regular file"),
    (["--config", "/dev/urandom", "status"], "not a regular file"),
    (["--export", "/etc/hostname"], "not a directory"),
    (["--export", "/no/such/dir/x"], "/no/such/dir is not a directory"),
    (["provision", "--family", "ipv5"], "expected one of ipv4, ipv6, dual"),
    (["provision", "--daemon", "quagga"], "unknown routing daemon 'quagga' (one of bird, frr)"),
    (["provision", "--daemon", "bird,"], "unknown routing daemon '' (one of bird, frr)"),
    (["probe", "--family", "both", URL], "expected ipv4 or ipv6"),
    (["drill", "--family", "garbage"], "expected ipv4 or ipv6"),
    (["probe", "--family", "ipv6", URL], "is not an ipv6 URL"),
    (["probe", "http://[203.0.113.10]/"], "not a valid URL"),
    (["probe", "http://[2001:db8::zz]/"], "not a valid URL"),
    (["probe", "http://[2001:db8::1/"], "not a valid URL"),
]

CONFIG_CASES = [
    ("[ssh]\nconnect_timeout = nan\n", "ssh.connect_timeout"),
    ('[provision]\nhostname_prefix = "node\\n"\n', "provision.hostname_prefix"),
    ('target = "aws"\n', "target: must be one of"),
    ("frob = 1\n", "frob: unknown key"),
    ('[provision]\nnodes = "two"\n', "provision.nodes"),
    ("[metal]\ntimeout = 0\n", "metal.timeout"),
    ("[health]\ninterval_ms = 5\n", "health.interval_ms"),
    ('[provision]\neip = "not-an-ip"\n', "is not an IPv4 address"),
    ('lab = "UPPER"\n', "invalid lab name"),
    ("[provision\n", "not valid TOML"),
    ('target = "static"\n', "static.nodes"),
    (
        'target = "metal"\n[metal]\nendpoint = "https://x"\nproject_id = "p"\n',
        "must look like host",
    ),
    ('[provision]\ntag = "bad tag"\n', "provision.tag"),
    ('[provision]\nfamily = "ipv5"\n', "provision.family: must be one of ipv4, ipv6, dual"),
    ('[provision]\ndaemon = "gobgp"\n', "provision.daemon: unknown routing daemon 'gobgp'"),
    (
        'target = "static"\n[[static.nodes]]\nname = "n1"\nhost = "h"\ndaemon = "quagga"\n',
        "static.nodes[0].daemon: must be one of bird, frr (or absent: detected)",
    ),
    (
        'target = "static"\n[[static.nodes]]\nname = "n1"\nhost = "h"\nfrr_unit = "frr; reboot"\n',
        "static.nodes[0].frr_unit: 'frr; reboot' is not a unit name",
    ),
    ('target = "static"\n[static]\neips = ["2001:db8::zz"]\n', "is not an IP address"),
    ('[metal]\nprobe_netns = "a b"\n', "metal.probe_netns: not a namespace name"),
    (
        'target = "static"\n[[static.nodes]]\nname = "n1"\nhost = "h"\n'
        'bird_conf = "etc/bird.conf"\n',
        "static.nodes[0].bird_conf: 'etc/bird.conf' is not an absolute path",
    ),
    (
        'target = "static"\n[[static.nodes]]\nname = "n1"\nhost = "h"\nbird_conf = "/etc/../x"\n',
        "is not an absolute path",
    ),
    (
        'target = "static"\n[[static.nodes]]\nname = "n1"\nhost = "h"\n'
        'eip_protocol = "eip; rm -rf /"\n',
        "is not a BIRD protocol name",
    ),
    (
        'target = "static"\n[[static.nodes]]\nname = "n1"\nhost = "h"\n'
        'nginx_unit = "nginx service"\n',
        "is not a unit name",
    ),
]


def _assert_one_line(proc: Any, fragment: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("ecmptui") and "error" in lines[0], lines[0]
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("argv", "fragment"), CLI_CASES, ids=[" ".join(a)[:40] for a, _ in CLI_CASES]
)
def test_cli(argv: list[str], fragment: Any, tmp_path: Path) -> None:
    env = {"ECMPTUI_LAB": NOT_UP, "XDG_CONFIG_HOME": str(tmp_path)}
    _assert_one_line(run_cli(*argv, env=env), fragment)


@pytest.mark.parametrize(
    ("text", "fragment"), CONFIG_CASES, ids=[t.splitlines()[-1][:30] for t, _ in CONFIG_CASES]
)
def test_config(text: str, fragment: Any, tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(text)
    _assert_one_line(run_cli("--config", str(cfg), "status"), fragment)


def test_an_ipv6_eip_asked_of_an_ipv4_only_deployment(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        'target = "static"\n[static]\neips = ["203.0.113.10"]\n'
        '[[static.nodes]]\nname = "n1"\nhost = "127.0.0.1"\n'
    )
    proc = run_cli("--config", str(cfg), "probe", "--family", "ipv6", "--duration", "1")
    _assert_one_line(proc, "this deployment has no ipv6 EIP (it serves: ipv4)")


def test_a_fifo_config_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "config.toml"
    os.mkfifo(fifo)
    _assert_one_line(run_cli("--config", str(fifo), "status", timeout=20), "not a regular file")


def test_binary_config(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_bytes(b"\x00\x01\xff\xfe binary")
    _assert_one_line(run_cli("--config", str(cfg), "status"), "not a text file")


# -- the lab API ---------------------------------------------------------------------------


def _request(
    lab: LabInfo,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict | None = None,
    token: bool = True,
) -> tuple[int, dict]:
    ctx = ssl.create_default_context(cafile=lab.ca_file)
    host, port = lab.endpoint.split(":")
    conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
    try:
        conn.putrequest(method, "/" + path)
        if token:
            conn.putheader("X-Auth-Token", lab.token())
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if body is not None and "Content-Length" not in (headers or {}):
            conn.putheader("Content-Length", str(len(body)))
        if "Content-Type" not in (headers or {}):
            conn.putheader("Content-Type", "application/json")
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def _api_cases(lab: LabInfo) -> Any:
    pid = lab.project_id
    nested = b"[" * 100_000 + b"]" * 100_000
    return [
        (
            "POST",
            f"projects/{pid}/ssh-keys",
            b'{"label": "x"}',
            {"Content-Length": "abc"},
            True,
            400,
        ),
        (
            "POST",
            f"projects/{pid}/ssh-keys",
            b'{"label": "x"}',
            {"Content-Length": "\u00b2"},
            True,
            400,
        ),
        (
            "POST",
            f"projects/{pid}/ssh-keys",
            b'{"label": "x"}',
            {"Content-Type": "text/plain"},
            True,
            415,
        ),
        (
            "POST",
            f"projects/{pid}/devices",
            json.dumps(
                {
                    "hostname": "..",
                    "plan": "t1.small",
                    "metro": "lab",
                    "operating_system": "debian_12",
                }
            ).encode(),
            None,
            True,
            422,
        ),
        (
            "POST",
            f"projects/{pid}/devices",
            json.dumps(
                {
                    "hostname": "a..b",
                    "plan": "t1.small",
                    "metro": "lab",
                    "operating_system": "debian_12",
                }
            ).encode(),
            None,
            True,
            422,
        ),
        ("POST", f"projects/{pid}/devices", nested, None, True, 422),
        (
            "POST",
            f"projects/{pid}/devices",
            json.dumps(
                {
                    "hostname": "h",
                    "plan": "t1.small",
                    "metro": "lab",
                    "operating_system": "debian_12",
                    "project_ssh_keys": [{}],
                }
            ).encode(),
            None,
            True,
            422,
        ),
        ("POST", f"projects/{pid}/devices", b'["a", "list"]', None, True, 422),
        (
            "POST",
            f"projects/{pid}/devices",
            json.dumps(
                {
                    "hostname": "h" * 64,
                    "plan": "t1.small",
                    "metro": "lab",
                    "operating_system": "debian_12",
                }
            ).encode(),
            None,
            True,
            422,
        ),
        ("POST", f"projects/{pid}/devices", b"{not json", None, True, 422),
        ("GET", f"projects/{pid}/devices", None, None, False, 401),
        ("GET", f"projects/{pid}/devices?per_page=abc", None, None, True, 422),
        (
            "POST",
            f"projects/{pid}/ips",
            json.dumps({"type": "public_ipv4", "quantity": "1"}).encode(),
            None,
            True,
            422,
        ),
        ("GET", "no/such/path", None, None, True, 404),
        ("PUT", f"projects/{pid}", b"{}", None, True, 405),
        (
            "POST",
            f"projects/{pid}/bgp-configs",
            json.dumps({"deployment_type": "local", "asn": "65000"}).encode(),
            None,
            True,
            422,
        ),
    ]


@pytest.mark.lab
def test_api(lab: LabInfo) -> None:
    for method, path, body, headers, token, want in _api_cases(lab):
        status, payload = _request(lab, method, path, body, headers, token)
        assert status == want, (method, path[:60], status, payload)
        assert isinstance(payload.get("errors"), list) and payload["errors"], payload
        assert all(isinstance(e, str) and "\n" not in e for e in payload["errors"])
