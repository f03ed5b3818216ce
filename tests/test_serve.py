"""`ecmptui serve` with a real SSH client (asyncssh): who gets in, what they may do, and
that every session's app process goes away."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncssh
import pytest

from conftest import run_cli


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    def __init__(self, tmp: Path, config: Path, *extra: str) -> None:
        self.tmp, self.port = tmp, free_port()
        self.keys = {}
        for name in ("operator", "viewer", "stranger"):
            key = asyncssh.generate_private_key("ssh-ed25519")
            key.write_private_key(tmp / name)
            self.keys[name] = str(tmp / name)
            (tmp / f"{name}.pub").write_bytes(key.export_public_key())
        (tmp / "operators").write_bytes((tmp / "operator.pub").read_bytes())
        (tmp / "viewers").write_bytes((tmp / "viewer.pub").read_bytes())
        self.log = open(tmp / "serve.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ecmptui", "--config", str(config), "serve", "--listen",
             f"127.0.0.1:{self.port}", "--authorized-keys", str(tmp / "viewers"),
             "--operators", str(tmp / "operators"), "--host-key", str(tmp / "hostkey"),
             *extra], stdout=self.log, stderr=subprocess.STDOUT, cwd="/")
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline and self.proc.poll() is None, self.logs()
                time.sleep(0.05)

    def logs(self) -> str:
        return (self.tmp / "serve.log").read_text()

    def children(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True,
                             text=True).stdout
        return [int(p) for p in out.split()]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()

    def connect(self, who: str, **kw):
        kw.setdefault("client_keys", [self.keys[who]] if who in self.keys else [])
        return asyncssh.connect("127.0.0.1", self.port, username=who, known_hosts=None,
                                agent_path=None, config=None, **kw)


async def open_terminal(conn, size=(80, 24)):
    chan, sess = await conn.create_session(Collect, term_type="xterm-256color",
                                           term_size=size, encoding=None)
    return chan, sess


class Collect(asyncssh.SSHClientSession):
    def __init__(self) -> None:
        self.data = b""

    def data_received(self, data, datatype) -> None:
        self.data += data

    async def wait_for(self, needle: bytes, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.data:
            assert time.monotonic() < deadline, f"{needle!r} never arrived"
            await asyncio.sleep(0.05)


@pytest.fixture
def lab_down_config(tmp_path) -> Path:
    cfg = tmp_path / "down.toml"
    cfg.write_text('target = "lab"\nlab = "zz9"\n')  # never up: the app shows its dialog
    return cfg


@pytest.fixture
def served(tmp_path, lab_down_config):
    s = Served(tmp_path, lab_down_config, "--max-sessions", "20", "--idle-timeout", "30")
    yield s
    s.stop()


async def test_authorised_key_gets_the_app_and_disconnect_ends_it(served):
    async with served.connect("viewer") as conn:
        chan, sess = await open_terminal(conn)
        await sess.wait_for(b"is not up")         # the dashboard's own dialog, drawn
        [child] = served.children()
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        assert b"--read-only" in cmdline           # a viewer key: read-only app
        chan.change_terminal_size(120, 40)
        await asyncio.sleep(0.5)
        chan.write(b"\x1b")                         # a key reaches it: the dialog closes
        await sess.wait_for(b"Traffic")
        chan.close()
    deadline = time.monotonic() + 5
    while served.children():
        assert time.monotonic() < deadline, "the session's app process outlived it"
        await asyncio.sleep(0.05)
    assert "logout" in served.logs() and "SHA256:" in served.logs()


async def test_operator_key_gets_the_full_app(served):
    async with served.connect("operator") as conn:
        chan, sess = await open_terminal(conn)
        await sess.wait_for(b"is not up")
        [child] = served.children()
        assert b"--read-only" not in Path(f"/proc/{child}/cmdline").read_bytes()
        chan.close()


@pytest.mark.parametrize("how", ["unknown-key", "password", "none"])
async def test_unknown_key_password_and_none_are_refused(served, how):
    kw = {"unknown-key": {"client_keys": [served.keys["stranger"]]},
          "password": {"client_keys": [], "password": "hunter2"},
          "none": {"client_keys": []}}[how]
    with pytest.raises(asyncssh.PermissionDenied):
        async with served.connect("stranger", **kw):
            pass
    assert served.children() == []


async def test_exec_and_port_forwarding_are_refused(served):
    async with served.connect("operator") as conn:
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.run("id", check=True)
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.open_connection("127.0.0.1", 22)
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.run(subsystem="sftp")
    assert served.children() == []


async def test_twenty_sessions_draw_and_the_21st_is_refused(served):
    conns = []
    try:
        for _ in range(20):
            conn = await served.connect("viewer")
            conns.append((conn, *await open_terminal(conn)))
        await asyncio.gather(*(sess.wait_for(b"is not up", 60) for _, _, sess in conns))
        assert len(served.children()) == 20
        async with served.connect("viewer") as extra:
            chan, sess = await open_terminal(extra)
            await sess.wait_for(b"too many sessions (20)")
    finally:
        for conn, _chan, _ in conns:
            conn.close()
    deadline = time.monotonic() + 15
    while served.children():
        assert time.monotonic() < deadline, f"left: {served.children()}"
        await asyncio.sleep(0.1)


@pytest.mark.lab
async def test_viewer_cannot_withdraw_an_operator_can(deployed, tmp_path):
    cfg, _ = deployed
    s = Served(tmp_path, cfg)
    status = lambda: json.loads(run_cli("--config", str(cfg), "status", "--json",
                                        check=True).stdout)
    try:
        for who in ("viewer", "operator"):
            async with s.connect(who) as conn:
                chan, sess = await open_terminal(conn, (120, 40))
                await sess.wait_for(b"tnode2", 30)
                await asyncio.sleep(1)
                chan.write(b"\x10")                    # ctrl+p: the command palette
                await asyncio.sleep(0.5)
                chan.write(b"Withdraw tnode2")
                await asyncio.sleep(1.0)
                chan.write(b"\r")
                await asyncio.sleep(2.5)
                withdrawn = [n["withdrawn"] for n in status()["nodes"]]
                if who == "viewer":
                    assert withdrawn == [False, False]  # nothing to run: refused
                else:
                    assert withdrawn == [False, True]
                chan.close()
    finally:
        s.stop()
        run_cli("--config", str(cfg), "node", "announce", "tnode2")
