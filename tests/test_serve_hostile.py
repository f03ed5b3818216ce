"""`ecmptui serve` against a hostile client with the demo password or a listed key (issue 23):
memory bounded per connection, no lockout from one address, an audit log that cannot be
forged. A real serve process and real asyncssh clients; no lab (the app says it is down)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from asyncssh.public_key import SSHLocalKeyPair

from serving import Collect, Served, log_events, open_terminal, rss_mb, wait_until

PASSWORD = "correct horse battery"


def _served(tmp_path: Path, config: Any, *extra: Any, log_format: Any = "json") -> Served:
    return Served(
        tmp_path, config, *extra, log_format=log_format, env={"ECMPTUI_DEMO_PASSWORD": PASSWORD}
    )


def _no_raw_control_and_short(text: str) -> None:
    for line in text.splitlines():
        assert len(line) <= 1024, line[:120]
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", line), repr(line[:120])


async def test_env_requests_are_never_kept_and_memory_stays_bounded(
    tmp_path: Path, lab_down_config: Path
) -> None:
    s = _served(tmp_path, lab_down_config)
    try:
        idle = rss_mb(s.proc.pid)
        env = {f"X{i}": "v" * 2048 for i in range(5000)}
        env["LANG"] = "C.UTF-8"  # the allow-list: a locale goes to the app
        async with s.connect("viewer") as conn:
            for _ in range(3):  # 3 channels, 5,000 env requests of 2 KB each, kept open (a
                # connection whose last terminal ends is closed; the third is refused, after
                # its env requests were read)
                await conn.create_session(
                    asyncssh.SSHClientSession, term_type="xterm", env=env, encoding=None
                )
            await asyncio.sleep(1.0)
            grown = rss_mb(s.proc.pid) - idle
        assert grown < 20, f"serve grew {grown:.0f} MB"
    finally:
        s.stop()
    ignored = [e for e in log_events(s) if e["event"] == "env-ignored"]
    assert ignored and ignored[0]["count"] == 5000 and ignored[0]["names"].startswith("X0,")
    assert "LANG" not in ignored[0]["names"]


async def test_silent_connections_from_one_address_do_not_lock_out_another(
    tmp_path: Path, lab_down_config: Path
) -> None:
    s = _served(tmp_path, lab_down_config, "--login-grace", "20")
    socks = []
    try:
        for _ in range(60):  # one source holds the door: connect and say nothing
            sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
            socks.append(sock)
        # an operator from another address logs in on the first try
        async with s.connect("operator", local_addr=("127.0.0.2", 0)) as conn:
            chan, sess = await open_terminal(conn)
            await sess.wait_for(b"is not up", 30)
    finally:
        for sock in socks:
            sock.close()
        s.stop()
    events = log_events(s)
    refused = [
        e for e in events if e["event"] == "refused" and e["source"].startswith("127.0.0.1:")
    ]
    assert any("--max-startups-per-source" in e["why"] for e in refused)
    assert any("penalised" in e["why"] for e in refused)  # and the address is penalised
    assert len(refused) <= 10  # 57 refusals: a few lines that count the rest
    assert sum(1 + e.get("repeated", 0) for e in refused) >= 57
    assert any(
        e["event"] == "auth-success"
        and e["role"] == "operator"
        and e["source"].startswith("127.0.0.2:")
        for e in events
    )


async def test_a_bad_signature_with_the_operators_key_is_a_failure_without_the_role(
    tmp_path: Path, lab_down_config: Path
) -> None:
    s = _served(tmp_path, lab_down_config)
    operator_pub = asyncssh.read_public_key(tmp_path / "operator.pub")
    stranger = asyncssh.read_private_key(tmp_path / "stranger")
    forged = SSHLocalKeyPair(stranger, None, None, None)
    forged.public_data = operator_pub.public_data  # presents the operator's, signs with its own
    try:
        for _ in range(3):
            with pytest.raises(asyncssh.PermissionDenied):
                async with s.connect("mallory", client_keys=[forged], password=None):
                    pass
        async with s.connect("mallory", client_keys=[forged], password="wrong one") as c:
            c.close()
    except asyncssh.PermissionDenied:
        pass
    finally:
        s.stop()
    events = log_events(s)
    failures = [e for e in events if e["event"] == "auth-failure"]
    forged_fp = operator_pub.get_fingerprint()
    sig = [e for e in failures if e["why"] == "signature does not verify"]
    assert len(sig) >= 3 and all(e["fingerprint"] == forged_fp for e in sig)
    assert all(e["role"] == "-" for e in failures)  # the role was never bound
    assert not any(e["event"] == "auth-success" for e in events)


async def test_hostile_terminal_names_and_resize_storms_leave_a_short_clean_log(
    tmp_path: Path, lab_down_config: Path
) -> None:
    s = _served(tmp_path, lab_down_config, log_format="text")
    try:
        async with s.connect("viewer") as conn:
            chan, sess = await conn.create_session(
                asyncssh.SSHClientSession,
                encoding=None,
                term_size=(80, 24),
                term_type="\x1b[2J\x1b[1;31mFAKE-ALERT" + "x" * 30000,
            )
            started = time.monotonic()
            n = 0
            while time.monotonic() - started < 3:
                for _ in range(200):
                    chan.change_terminal_size(9000 + n % 7, 9000)
                    n += 1
                await asyncio.sleep(0.01)
            chan.close()
        await asyncio.sleep(0.5)
    finally:
        s.stop()
    text = s.logs()
    _no_raw_control_and_short(text)
    assert "term-refused" in text and "FAKE-ALERT" in text  # logged, escaped, cut
    assert n > 5000 and text.count("resize-clamped") <= 2
    # the app was not given the hostile name
    assert "term=xterm-256color" in text


async def test_sha1_key_exchange_and_keyboard_interactive_are_not_offered(
    tmp_path: Path, lab_down_config: Path
) -> None:
    s = _served(tmp_path, lab_down_config)
    try:
        with pytest.raises((asyncssh.KeyExchangeFailed, asyncssh.DisconnectError)):
            async with s.connect("viewer", kex_algs=["diffie-hellman-group14-sha1"]):
                pass
        with pytest.raises(asyncssh.PermissionDenied):
            async with s.connect(
                "demo",
                client_keys=[],
                password=None,
                kbdint_auth=True,
                preferred_auth="keyboard-interactive",
            ):
                pass
    finally:
        s.stop()


async def test_refused_sessions_close_their_connection_and_one_connection_is_capped(
    tmp_path: Path, lab_down_config: Path
) -> None:
    s = _served(tmp_path, lab_down_config)
    try:
        async with s.connect("viewer") as conn:  # no terminal: refused, then closed
            chan, sess = await conn.create_session(asyncssh.SSHClientSession, encoding=None)
            await asyncio.wait_for(conn.wait_closed(), 10)
        async with s.connect("viewer") as conn:  # three terminals on one connection
            opened = [await open_terminal(conn) for _ in range(3)]
            await opened[2][1].wait_for(b"too many sessions on this connection", 15)
            await opened[0][1].wait_for(b"is not up", 30)
    finally:
        s.stop()


async def test_the_json_log_is_pure_json_from_start_to_stop(
    tmp_path: Path, lab_down_config: Path
) -> None:
    s = _served(tmp_path, lab_down_config)  # its host key is generated: logged as JSON
    try:
        async with s.connect("viewer") as conn:
            chan, sess = await open_terminal(conn)
            await sess.wait_for(b"is not up", 30)
        # the server has seen the client go before it is stopped (else its "disconnect"
        # may land after "stopped" on a loaded machine)
        await wait_until(lambda: s.logs().count('"disconnect"') >= 2, 30)
    finally:
        s.stop()
    lines = [ln for ln in s.logs().splitlines() if ln.strip()]
    events = [json.loads(ln) for ln in lines]  # every line, not only the audit's
    kinds = [e["event"] for e in events]
    assert "log" in kinds and kinds[-1] == "stopped"
    assert any("generated host key" in e.get("message", "") for e in events)


async def test_a_viewer_that_stops_reading_costs_the_server_no_memory(
    tmp_path: Path, lab_down_config: Path
) -> None:
    s = _served(tmp_path, lab_down_config)
    try:
        idle = rss_mb(s.proc.pid)
        async with s.connect("viewer") as conn:
            sessions = [await open_terminal(conn, size=(500, 200)) for _ in range(2)]
            await sessions[0][1].wait_for(b"is not up", 30)
            for chan, _ in sessions:
                chan.pause_reading()
            # every resize redraws a 500x200 screen: megabytes the client does not read
            started = time.monotonic()
            n = 0
            while time.monotonic() - started < 10:
                for chan, _ in sessions:
                    chan.change_terminal_size(500 - n % 2, 200)
                n += 1
                await asyncio.sleep(0.05)
            grown = rss_mb(s.proc.pid) - idle
        assert grown < 20, f"serve grew {grown:.0f} MB"
    finally:
        s.stop()


def test_openssh_offering_only_sha1_key_exchange_is_refused(
    tmp_path: Path, lab_down_config: Path
) -> None:
    import subprocess

    s = _served(tmp_path, lab_down_config)
    try:
        proc = subprocess.run(
            [
                "ssh",
                "-p",
                str(s.port),
                "-F",
                "/dev/null",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "IdentityAgent=none",
                "-o",
                "BatchMode=yes",
                "-o",
                "KexAlgorithms=diffie-hellman-group14-sha1",
                "-i",
                s.keys["viewer"],
                "viewer@127.0.0.1",
                "true",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        s.stop()
    assert proc.returncode == 255
    assert "no matching key exchange method found" in proc.stderr, proc.stderr


async def test_a_locale_reaches_the_app_and_nothing_else_does(
    tmp_path: Path, lab_down_config: Path
) -> None:
    from pathlib import Path

    s = _served(tmp_path, lab_down_config)
    try:
        async with s.connect("viewer") as conn:
            chan, sess = await conn.create_session(
                Collect,
                term_type="xterm-256color",
                term_size=(80, 24),
                env={"LC_TIME": "C.UTF-8", "EVIL": "1", "LANG": "$(reboot)"},
                encoding=None,
            )
            await sess.wait_for(b"is not up", 30)
            [pid] = s.sessions()
            environ = dict(
                v.split(b"=", 1)
                for v in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                if b"=" in v
            )
    finally:
        s.stop()
    assert environ.get(b"LC_TIME") == b"C.UTF-8"
    assert b"EVIL" not in environ and environ.get(b"LANG") != b"$(reboot)"
