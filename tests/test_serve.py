"""`ecmptui serve` with a real SSH client (asyncssh): who gets in, what they may do, and
that every session's app process goes away."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from conftest import Deployed, probers, run_cli, wait_for
from ecmptui.waits import scaled
from serving import ONE_MACHINE, Served, open_terminal, palette


@pytest.fixture
def served(tmp_path: Path, lab_down_config: Path) -> Iterator[Any]:
    s = Served(
        tmp_path, lab_down_config, "--max-viewers", "20", "--idle-timeout", "30", *ONE_MACHINE
    )
    yield s
    s.stop()


async def test_authorised_key_gets_the_app_and_disconnect_ends_it(served: Any) -> None:
    async with served.connect("viewer") as conn:
        chan, sess = await open_terminal(conn)
        await sess.wait_for(b"is not up")  # the dashboard's own dialog, drawn
        [child] = served.sessions()
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        assert b"--read-only" in cmdline  # a viewer key: read-only app
        chan.change_terminal_size(120, 40)
        await asyncio.sleep(0.5)
        chan.write(b"\x1b")  # a key reaches it: the dialog closes
        await sess.wait_for(b"Provision")  # the Footer: the app is up
        chan.close()
    deadline = time.monotonic() + 5
    while served.sessions():
        assert time.monotonic() < deadline, "the session's app process outlived it"
        await asyncio.sleep(0.05)
    assert "session-end" in served.logs() and "disconnect" in served.logs()
    assert "fingerprint=SHA256:" in served.logs()


async def test_operator_key_gets_the_full_app(served: Any) -> None:
    async with served.connect("operator") as conn:
        chan, sess = await open_terminal(conn)
        await sess.wait_for(b"is not up")
        [child] = served.sessions()
        assert b"--read-only" not in Path(f"/proc/{child}/cmdline").read_bytes()
        chan.close()


@pytest.mark.parametrize("how", ["unknown-key", "password", "none"])
async def test_unknown_key_password_and_none_are_refused(served: Any, how: Any) -> None:
    ways: dict[str, dict[str, Any]] = {
        "unknown-key": {"client_keys": [served.keys["stranger"]]},
        "password": {"client_keys": [], "password": "hunter2"},
        "none": {"client_keys": []},
    }
    kw = ways[how]
    with pytest.raises(asyncssh.PermissionDenied):
        async with served.connect("stranger", **kw):
            pass
    assert served.sessions() == []


async def test_exec_and_port_forwarding_are_refused(served: Any) -> None:
    async with served.connect("operator") as conn:
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.run("id", check=True)
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.open_connection("127.0.0.1", 22)
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.run(subsystem="sftp")
    assert served.sessions() == []


async def test_twenty_sessions_draw_and_the_21st_is_refused(served: Any) -> None:
    conns = []
    try:
        for _ in range(20):
            conn = await served.connect("viewer")
            conns.append((conn, *await open_terminal(conn)))
        await asyncio.gather(*(sess.wait_for(b"is not up", 60) for _, _, sess in conns))
        assert len(served.sessions()) == 20
        async with served.connect("viewer") as extra:
            chan, sess = await open_terminal(extra)
            await sess.wait_for(b"too many viewer sessions (20)")
    finally:
        for conn, _chan, _ in conns:
            conn.close()
    deadline = time.monotonic() + 15
    while served.sessions():
        assert time.monotonic() < deadline, f"left: {served.sessions()}"
        await asyncio.sleep(0.1)


def app_env(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


@pytest.mark.lab
async def test_viewer_cannot_withdraw_an_operator_can(deployed: Deployed, tmp_path: Path) -> None:
    cfg, _ = deployed
    s = Served(tmp_path, cfg)
    status = lambda: json.loads(
        run_cli("--config", str(cfg), "status", "--json", check=True).stdout
    )
    try:
        async with s.connect("viewer") as vconn:
            vchan, vsess = await open_terminal(vconn, (120, 40))
            await vsess.wait_for(b"tnode2", 30)
            # the palette of a read-only app offers no action...
            await palette(vchan, b"Withdraw tnode2")
            vchan.write(b"\x1b")
            await asyncio.sleep(1.0)
            # ...and the feed is the app's alone: a made-up token or a second reader of
            # the viewer's token gets nothing
            [child] = s.sessions()
            env = app_env(child)
            for token in ("0" * 32, env["ECMPTUI_FEED_TOKEN"]):
                reader, writer = await asyncio.open_unix_connection(env["ECMPTUI_FEED"])
                writer.write(json.dumps({"k": "hello", "token": token}).encode() + b"\n")
                assert await reader.readline() == b""
                writer.close()
            assert [n["withdrawn"] for n in status()["nodes"]] == [False, False]

            async with s.connect("operator") as conn:
                chan, sess = await open_terminal(conn, (120, 40))
                await sess.wait_for(b"tnode2", 30)
                await asyncio.sleep(1)
                await palette(chan, b"Withdraw tnode2")
                await sess.wait_for(b"Withdraw tnode2?", 10)  # asks first
                chan.write(b"\r")  # Enter: yes
                deadline = time.monotonic() + 30
                while "action-result" not in s.logs():  # measured by the server
                    assert time.monotonic() < deadline, s.logs()
                    await asyncio.sleep(0.2)
                assert [n["withdrawn"] for n in status()["nodes"]] == [False, True]
                # the viewer's timeline shows the operator's action
                await vsess.wait_for(b"withdraw", 10)
                chan.close()
    finally:
        s.stop()
        run_cli("--config", str(cfg), "node", "announce", "tnode2")
    logs = s.logs()
    assert (
        "action source=" in logs
        and "role=operator node=tnode2 action=withdraw outcome=done" in logs
    )
    assert re.search(r"action-result .*node=tnode2 action=withdraw .*convergence_ms=", logs)


@pytest.mark.lab
async def test_twenty_viewers_cost_the_service_one_prober(
    deployed: Deployed, tmp_path: Path
) -> None:
    cfg, _ = deployed
    s = Served(tmp_path, cfg, "--max-viewers", "20", "--rate", "50", *ONE_MACHINE)
    conns = []
    try:
        for _ in range(20):
            conn = await s.connect("viewer")
            conns.append((conn, *await open_terminal(conn, (100, 30))))
        await asyncio.gather(
            *(sess.wait_for(b"shared by every session", 90) for _, _, sess in conns)
        )
        await asyncio.gather(*(sess.wait_for(b"tnode2", 30) for _, _, sess in conns))
        assert len(s.sessions()) == 20
        running = probers()
        assert len(running) == 1, running  # one prober, whoever watches
        parent = int(Path(f"/proc/{running[0]}/stat").read_text().split()[3])
        assert parent == s.proc.pid
        for child in s.sessions():  # no session probes or polls by itself
            assert subprocess.run(["pgrep", "-P", str(child)], capture_output=True).stdout == b""
            assert "ECMPTUI_FEED_TOKEN" in app_env(child)
    finally:
        for conn, _chan, _ in conns:
            conn.close()
        s.stop()
    # the prober exits just after the server that ran it: give it that moment (scaled)
    assert wait_for(lambda: probers() == [], timeout=scaled(5.0)), probers()


def test_metrics_listen_serves_the_shared_status(tmp_path: Path, lab_down_config: Path) -> None:
    """`serve --metrics-listen`: the server's own endpoint says what its feed sees (here a
    lab that is down: no status, no prober), and stops with the server."""
    import httpx

    s = Served(tmp_path, lab_down_config, "--metrics-listen", "127.0.0.1:0", *ONE_MACHINE)
    try:
        url = wait_for(
            lambda: (
                (m := re.search(r"metrics at (http://127\.0\.0\.1:\d+/metrics)", s.logs()))
                and m.group(1)
            ),
            scaled(10),
        )
        assert url, s.logs()
        text = wait_for(
            lambda: "ecmptui_status_up{" in (t := httpx.get(url, timeout=5).text) and t,
            scaled(10),
        )
        assert re.search(r'ecmptui_status_up\{vantage="[^"]+"\} 0\.0', text), text
        assert "ecmptui_probe_requests_total{" not in text  # nothing was probed
    finally:
        s.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=5)
