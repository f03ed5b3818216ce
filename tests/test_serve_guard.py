"""`ecmptui serve` as an attacker and a careless admin would try it: huge terminals, password
guessing, connections that never log in or never open a terminal, full slots, the palette's
screenshot, unsafe files, and an idle session's terminal. Real OpenSSH and asyncssh clients."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from conftest import run_cli
from ecmptui.serve import guard
from serving import Served, log_events, open_terminal, palette, rss_mb, wait_until

PASSWORD = "correct horse battery"


def ssh_argv(s: Served, *opts: str) -> list[str]:
    return [
        "ssh",
        "-p",
        str(s.port),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "IdentityAgent=none",
        "-F",
        "/dev/null",
        *opts,
    ]


# -- limits ---------------------------------------------------------------------------------
async def test_a_huge_terminal_is_clamped_and_the_session_survives(
    tmp_path: Path, lab_down_config: Path
) -> None:
    s = Served(tmp_path, lab_down_config)
    try:
        async with s.connect("viewer") as conn:
            chan, sess = await open_terminal(conn, (65535, 65535))
            await sess.wait_for(b"is not up", 20)
            [child] = s.sessions()
            chan.change_terminal_size(60000, 60000)
            await asyncio.sleep(3)
            assert rss_mb(child) < 150, f"{rss_mb(child):.0f} MB"
            got = os.popen(f"stty -F /proc/{child}/fd/0 size 2>/dev/null").read().split()
            assert got == [str(guard.MAX_ROWS), str(guard.MAX_COLS)]
            chan.write(b"\x1b")  # still alive and drawing
            await sess.wait_for(b"Provision")  # the Footer: the app is up
            chan.close()
    finally:
        s.stop()
    assert "resize-clamped" in s.logs() and "asked=65535x65535 given=500x200" in s.logs()


async def test_seven_wrong_passwords_close_the_connection_with_growing_delays(
    tmp_path: Path, lab_down_config: Path
) -> None:
    s = Served(tmp_path, lab_down_config, env={guard.PASSWORD_ENV: PASSWORD})
    times: list[float] = []

    class Guesser(asyncssh.SSHClient):
        def password_auth_requested(self) -> str:
            times.append(time.monotonic())
            return f"guess-{len(times)}"

    try:
        with pytest.raises((asyncssh.PermissionDenied, asyncssh.DisconnectError, ConnectionError)):
            async with asyncssh.connect(
                "127.0.0.1",
                s.port,
                username="mallory",
                known_hosts=None,
                client_keys=[],
                agent_path=None,
                config=None,
                client_factory=Guesser,
                preferred_auth="password",
            ):
                pass
        # asked for a 7th, but the server closed the connection after the 6th failure
        assert len(times) <= guard.MAX_AUTH_TRIES + 1
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert len(gaps) >= 4 and all(
            later > earlier for earlier, later in zip(gaps[:4], gaps[1:5], strict=True)
        ), gaps
        assert gaps[0] >= 0.09
    finally:
        s.stop()
    logs = s.logs()
    assert logs.count("auth-failure") == guard.MAX_AUTH_TRIES
    assert "user=mallory" in logs and "method=password" in logs
    assert 'why="too many authentication failures"' in logs


def test_openssh_password_guessing_is_cut_off(tmp_path: Path, lab_down_config: Path) -> None:
    s = Served(tmp_path, lab_down_config, env={guard.PASSWORD_ENV: PASSWORD})
    askpass = tmp_path / "askpass"
    tries = tmp_path / "tries"
    askpass.write_text(f"#!/bin/sh\necho x >> {tries}\necho wrong-password\n")
    askpass.chmod(0o700)
    try:
        proc = subprocess.run(
            ssh_argv(
                s,
                "-o",
                "PreferredAuthentications=password",
                "-o",
                "PubkeyAuthentication=no",
                "-o",
                "NumberOfPasswordPrompts=30",
                "-tt",
                "mallory@127.0.0.1",
            ),
            env={
                **os.environ,
                "SSH_ASKPASS": str(askpass),
                "SSH_ASKPASS_REQUIRE": "force",
                "DISPLAY": ":0",
            },
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        s.stop()
    assert proc.returncode == 255
    assert len(tries.read_text().split()) <= guard.MAX_AUTH_TRIES + 1  # not 30
    assert s.sessions() == []


async def test_connections_that_never_log_in_are_capped(
    tmp_path: Path, lab_down_config: Path
) -> None:
    s = Served(tmp_path, lab_down_config, "--max-startups", "3", "--max-startups-per-source", "10")
    socks = []
    try:
        for _ in range(6):  # banner-only: connect, say nothing
            sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
            sock.settimeout(5)
            socks.append(sock)
            await asyncio.sleep(0.1)
        closed = 0
        for sock in socks[3:]:
            try:
                data = sock.recv(4096)
                while data:
                    data = sock.recv(4096)
                closed += 1
            except (ConnectionResetError, TimeoutError):
                closed += isinstance(sock, socket.socket)
        assert closed == 3
        # a real user still gets in once the idle ones are gone
        for sock in socks:
            sock.close()
        await asyncio.sleep(0.3)
        async with s.connect("viewer") as conn:
            chan, sess = await open_terminal(conn)
            await sess.wait_for(b"is not up", 20)
    finally:
        s.stop()
    # three refusals in a moment from one address: one line, the rest counted in the next
    assert s.logs().count("(--max-startups)") >= 1


def test_ssh_N_is_closed_at_the_login_grace_time(tmp_path: Path, lab_down_config: Path) -> None:
    s = Served(tmp_path, lab_down_config, "--login-grace", "2")
    try:
        t0 = time.monotonic()
        proc = subprocess.run(
            ssh_argv(s, "-i", s.keys["viewer"], "-N", "viewer@127.0.0.1"),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
        )
        took = time.monotonic() - t0
    finally:
        s.stop()
    assert proc.returncode != 0 and 1.5 < took < 10, took
    assert "no terminal session within 2 s" in s.logs()


def test_sftp_and_forwarding_are_refused_and_logged(tmp_path: Path, lab_down_config: Path) -> None:
    s = Served(tmp_path, lab_down_config)
    try:
        proc = subprocess.run(
            [
                "sftp",
                "-P",
                str(s.port),
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "IdentityAgent=none",
                "-F",
                "/dev/null",
                "-i",
                s.keys["viewer"],
                "-b",
                "-",
                "viewer@127.0.0.1",
            ],
            input="ls\n",
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode != 0
        fwd = subprocess.run(
            ssh_argv(
                s,
                "-i",
                s.keys["operator"],
                "-o",
                "ExitOnForwardFailure=yes",
                "-W",
                "127.0.0.1:22",
                "operator@127.0.0.1",
            ),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
        )
        assert fwd.returncode != 0
    finally:
        s.stop()
    logs = s.logs()
    assert 'why="subsystem sftp"' in logs
    assert 'why="port forwarding" to=127.0.0.1:22' in logs
    assert s.sessions() == []


async def test_operators_keep_their_slots_when_viewers_fill_theirs(
    tmp_path: Path, lab_down_config: Path
) -> None:
    s = Served(tmp_path, lab_down_config, "--max-viewers", "2", "--max-operators", "1")
    conns = []
    try:
        for _ in range(2):
            conn = await s.connect("viewer")
            conns.append(conn)
            _chan, sess = await open_terminal(conn)
            await sess.wait_for(b"is not up", 20)
        extra = await s.connect("viewer")
        conns.append(extra)
        _chan, sess = await open_terminal(extra)
        await sess.wait_for(b"too many viewer sessions (2)")
        op = await s.connect("operator")
        conns.append(op)
        _chan, sess = await open_terminal(op)
        await sess.wait_for(b"is not up", 20)
        assert len(s.sessions()) == 3
    finally:
        for conn in conns:
            conn.close()
        s.stop()
    assert 'why="viewer slots full (2)"' in s.logs()


async def test_a_viewer_session_ends_at_its_maximum_length_even_when_busy(
    tmp_path: Path, lab_down_config: Path
) -> None:
    s = Served(tmp_path, lab_down_config, "--max-session", "3", "--idle-timeout", "60")
    try:
        async with s.connect("viewer") as conn:
            chan, sess = await open_terminal(conn)
            await sess.wait_for(b"is not up", 20)
            t0 = time.monotonic()
            while b"session time is over" not in sess.data:
                assert time.monotonic() - t0 < 15, "the session never ended"
                chan.write(b"\x1b[A")  # an arrow key now and then: still busy
                await asyncio.sleep(0.3)
    finally:
        s.stop()
    assert 'reason="max session length" app=exited' in s.logs()


# -- the terminal on the way out --------------------------------------------------------------
def test_idle_timeout_ends_the_app_the_normal_way(tmp_path: Path, lab_down_config: Path) -> None:
    s = Served(tmp_path, lab_down_config, "--idle-timeout", "3")
    proc = subprocess.Popen(
        ssh_argv(s, "-i", s.keys["viewer"], "-tt", "viewer@127.0.0.1"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:  # stdin stays open: the session is idle, not closed
        proc.wait(40)
        assert proc.stdout is not None
        out = proc.stdout.read()
    finally:
        proc.kill()
        s.stop()
    assert b"idle timeout" in out
    enter, leave = out.find(b"\x1b[?1049h"), out.rfind(b"\x1b[?1049l")
    assert 0 <= enter < leave  # back on the main screen
    assert out.rfind(b"\x1b[?1000l") > out.rfind(b"\x1b[?1000h") >= 0  # mouse off
    assert 'reason="idle timeout" app=exited' in s.logs()  # the app itself cleaned up


async def test_server_shutdown_ends_sessions_the_normal_way(
    tmp_path: Path, lab_down_config: Path
) -> None:
    s = Served(tmp_path, lab_down_config)
    async with s.connect("viewer") as conn:
        chan, sess = await open_terminal(conn)
        await sess.wait_for(b"is not up", 20)
        s.proc.terminate()
        await sess.wait_for(b"shutting down", 15)
        s.stop()
    assert 'reason="server shutdown" app=exited' in s.logs()


# -- nothing for viewers outside the dashboard ------------------------------------------------
async def test_the_palette_offers_no_screenshot_in_a_served_session(
    tmp_path: Path, lab_down_config: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    s = Served(
        tmp_path, lab_down_config, env={"HOME": str(home), "XDG_DOWNLOAD_DIR": str(home / "dl")}
    )
    try:
        async with s.connect("viewer") as conn:
            chan, sess = await open_terminal(conn, (120, 40))
            await sess.wait_for(b"is not up", 20)
            chan.write(b"\x1b")
            await asyncio.sleep(0.5)
            await palette(chan, b"Qui", enter=False)
            await sess.wait_for(b"Quit the application")  # the palette works...
            chan.write(b"\x7f\x7f\x7fScreensh")
            await asyncio.sleep(1.5)
            chan.write(b"\r")
            await asyncio.sleep(1.5)
            assert b"Save an SVG" not in sess.data  # ...but has no screenshot
            chan.close()
    finally:
        s.stop()
    assert not list(home.rglob("*.svg"))


def test_a_crash_shows_one_line_and_logs_the_traceback(tmp_path: Path) -> None:
    """The served app's own crash path: the viewer's terminal gets one line, the error fd
    (the server's log) the traceback."""
    script = tmp_path / "crash.py"
    script.write_text(
        "import os, sys\n"
        "from ecmptui.app import EcmpApp\n"
        "from ecmptui.cockpit import LocalCockpit\n"
        "from ecmptui.config import Settings\n"
        "app = EcmpApp(LocalCockpit(Settings()), live=False, served=True,\n"
        "              error_fd=int(sys.argv[1]))\n"
        "try:\n"
        "    {}['no such key']\n"
        "except KeyError as exc:\n"
        "    app._handle_exception(exc)\n"
        "app._print_error_renderables()\n"
    )
    r, w = os.pipe()
    proc = subprocess.run(
        [sys.executable, str(script), str(w)],
        pass_fds=(w,),
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    os.close(w)
    logged = os.read(r, 1 << 20).decode()
    os.close(r)
    assert proc.stderr.strip().splitlines() == [
        "ecmptui: the dashboard stopped after an internal error; the server's log has the details"
    ], proc.stderr
    assert "Traceback" in logged and "no such key" in logged
    assert "Traceback" not in proc.stdout + proc.stderr


# -- the audit log ---------------------------------------------------------------------------
async def test_json_audit_log_has_one_line_per_event_with_who(
    tmp_path: Path, lab_down_config: Path
) -> None:
    s = Served(tmp_path, lab_down_config, env={guard.PASSWORD_ENV: PASSWORD}, log_format="json")
    try:
        with pytest.raises(asyncssh.PermissionDenied):
            async with s.connect("stranger", client_keys=[s.keys["stranger"]]):
                pass
        async with s.connect("demo", client_keys=[], password=PASSWORD) as conn:
            chan, sess = await open_terminal(conn)
            await sess.wait_for(b"is not up", 20)
            chan.close()
        await wait_until(lambda: sum(e["event"] == "disconnect" for e in log_events(s)) >= 2)
    finally:
        s.stop()
    events = [e for e in log_events(s) if e["event"] != "log"]  # the server's own messages
    assert all(
        {"time", "event", "source", "user", "fingerprint", "role"} <= e.keys() for e in events
    )
    kinds = [e["event"] for e in events]
    for kind in (
        "listening",
        "connect",
        "auth-failure",
        "auth-success",
        "session-start",
        "session-end",
        "disconnect",
    ):
        assert kind in kinds, kind
    fail = next(e for e in events if e["event"] == "auth-failure")
    assert fail["user"] == "stranger" and fail["method"] == "publickey"
    assert fail["fingerprint"].startswith("SHA256:")
    ok = next(e for e in events if e["event"] == "auth-success")
    assert ok["user"] == "demo" and ok["method"] == "password" and ok["role"] == "viewer"
    end = next(e for e in events if e["event"] == "session-end")
    assert end["reason"] == "client closed" and end["duration_s"] >= 0
    assert PASSWORD not in s.logs()
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", events[0]["time"])


# -- files and secrets -----------------------------------------------------------------------
def _keys(tmp_path: Path) -> Path:
    key = asyncssh.generate_private_key("ssh-ed25519")
    pub = tmp_path / "ops"
    pub.write_bytes(key.export_public_key())
    pub.chmod(0o644)
    return pub


@pytest.mark.parametrize(
    "case",
    [
        "world-writable-operators",
        "group-writable-viewers",
        "readable-host-key",
        "missing-operators",
        "literal-password",
        "empty-password-file",
        "short-password-env",
        "readable-password-file",
        "writable-grandparent",
    ],
)
def test_unsafe_files_and_secrets_are_refused(tmp_path: Path, case: Any) -> None:
    ops = _keys(tmp_path)
    hostkey = tmp_path / "hostkey"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(hostkey)
    hostkey.chmod(0o600)
    args = ["serve", "--listen", "127.0.0.1:1", "--operators", str(ops), "--host-key", str(hostkey)]
    env = {}
    if case == "world-writable-operators":
        ops.chmod(0o666)
        want = "--operators"
    elif case == "group-writable-viewers":
        viewers = tmp_path / "viewers"
        viewers.write_bytes(ops.read_bytes())
        viewers.chmod(0o664)
        args += ["--authorized-keys", str(viewers)]
        want = "--authorized-keys"
    elif case == "readable-host-key":
        hostkey.chmod(0o644)
        want = "--host-key"
    elif case == "missing-operators":
        args[args.index(str(ops))] = str(tmp_path / "operatros")
        want = "no such file"
    elif case == "literal-password":
        args += ["--demo-password", PASSWORD]
        want = "visible to every local user"
    elif case == "readable-password-file":  # a secret: 0600, as the README asks
        (tmp_path / "pw").write_text(PASSWORD + "\n")
        (tmp_path / "pw").chmod(0o644)
        args += ["--demo-password-file", str(tmp_path / "pw")]
        want = "--demo-password-file"
    elif case == "writable-grandparent":  # StrictModes checks every directory of the path
        deep = tmp_path / "open" / "keys"
        deep.mkdir(parents=True)
        (tmp_path / "open").chmod(0o777)
        moved = deep / "ops"
        moved.write_bytes(ops.read_bytes())
        moved.chmod(0o644)
        args[args.index(str(ops))] = str(moved)
        want = f"{tmp_path / 'open'} is group/world-writable"
    elif case == "empty-password-file":
        (tmp_path / "pw").write_text("\n")
        (tmp_path / "pw").chmod(0o600)
        args += ["--demo-password-file", str(tmp_path / "pw")]
        want = "empty"
    else:
        env[guard.PASSWORD_ENV] = "abc"
        want = "shorter than 8"
    proc = run_cli(*args, env=env, timeout=30)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and want in lines[0], proc.stderr
    assert PASSWORD not in proc.stderr


def test_penalties_grow_and_expire() -> None:
    now = [0.0]
    p = guard.Penalties(threshold=3, window=60, base=10, cap=25, clock=lambda: now[0])
    assert not p.failed("a") and not p.failed("a")
    assert p.failed("a") and p.blocked("a") == 10
    assert p.blocked("b") == 0  # per source
    now[0] += 11
    assert p.blocked("a") == 0
    for _ in range(3):
        p.failed("a")
    assert p.blocked("a") == 20  # twice as long the second time
    now[0] += 21
    for _ in range(3):
        p.failed("a")
    assert p.blocked("a") == 25  # capped
    now[0] += 1000
    p.prune()
    assert p.recent("a") == 0


def test_failure_delay_doubles_and_is_capped() -> None:
    delays = [guard.failure_delay(n, 0) for n in range(1, 8)]
    assert delays[:3] == [0.1, 0.2, 0.4] and delays[-1] == 4.0
    assert guard.failure_delay(1, 20) > guard.failure_delay(1, 0)
    assert guard.clamp_size(65535, 65535) == (guard.MAX_COLS, guard.MAX_ROWS)
    assert guard.clamp_size(0, 0) == (80, 24)
