"""Helpers for the `ecmptui serve` tests: a real serve process, keys, and SSH clients."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncssh

from ecmptui.waits import scaled

# every test client comes from 127.0.0.1: the per-address caps would count them as one
# stranger (tests of those caps leave this out)
ONE_MACHINE = ("--max-sessions-per-source", "25", "--max-startups-per-source", "25")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    def __init__(
        self,
        tmp: Path,
        config: Path,
        *extra: str,
        env: dict | None = None,
        log_format: str = "text",
    ) -> None:
        self.tmp, self.port = tmp, free_port()
        self.keys = {}
        for name in ("operator", "viewer", "stranger"):
            key = asyncssh.generate_private_key("ssh-ed25519")
            key.write_private_key(tmp / name)
            self.keys[name] = str(tmp / name)
            (tmp / f"{name}.pub").write_bytes(key.export_public_key())
        (tmp / "operators").write_bytes((tmp / "operator.pub").read_bytes())
        (tmp / "viewers").write_bytes((tmp / "viewer.pub").read_bytes())
        for name in ("operators", "viewers", *self.keys):
            (tmp / name).chmod(0o600)
        self.log = open(tmp / "serve.log", "w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ecmptui",
                "--config",
                str(config),
                "serve",
                "--listen",
                f"127.0.0.1:{self.port}",
                "--authorized-keys",
                str(tmp / "viewers"),
                "--operators",
                str(tmp / "operators"),
                "--host-key",
                str(tmp / "hostkey"),
                "--log-format",
                log_format,
                *extra,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd="/",
            env={**os.environ, **(env or {})},
        )
        deadline = time.monotonic() + scaled(10)  # a server start under load takes longer
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
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True
        ).stdout
        return [int(p) for p in out.split()]

    def sessions(self) -> list[int]:
        """The children that are sessions' apps (the feed's prober is a child too)."""
        out = []
        for pid in self.children():
            try:
                env = Path(f"/proc/{pid}/environ").read_bytes()
            except OSError:
                continue
            if b"ECMPTUI_SERVED=1" in env:
                out.append(pid)
        return out

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(scaled(10))
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()

    def connect(self, who: str, **kw: Any) -> Any:
        kw.setdefault("client_keys", [self.keys[who]] if who in self.keys else [])
        return asyncssh.connect(
            "127.0.0.1",
            self.port,
            username=who,
            known_hosts=None,
            agent_path=None,
            config=None,
            **kw,
        )


async def open_terminal(conn: Any, size: tuple[int, int] = (80, 24)) -> Any:
    chan, sess = await conn.create_session(
        Collect, term_type="xterm-256color", term_size=size, encoding=None
    )
    return chan, sess


class Collect(asyncssh.SSHClientSession):
    def __init__(self) -> None:
        self.data = b""

    def data_received(self, data: Any, datatype: Any) -> None:
        self.data += data

    async def wait_for(self, needle: bytes, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.data:
            assert time.monotonic() < deadline, f"{needle!r} never arrived"
            await asyncio.sleep(0.05)


async def palette(chan: Any, text: bytes, enter: bool = True) -> None:
    """Open the command palette (ctrl+p), type `text`, and run the first match."""
    chan.write(b"\x10")
    await asyncio.sleep(0.5)
    chan.write(text)
    await asyncio.sleep(1.0)
    if enter:
        chan.write(b"\r")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def log_events(s: Served) -> list[dict]:
    return [json.loads(line) for line in s.logs().splitlines() if line.startswith("{")]


async def wait_until(predicate: Callable[[], Any], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never met"
        await asyncio.sleep(0.05)
