"""One long-lived `sh` on a node over SSH, running argv lists one at a time.

Starting a command per SSH channel costs a login-shell start each time (~200 ms on a host
whose root .bashrc is heavy, plus a round trip on a real network). One shell per connection
pays that once. Every command is shlex-quoted; input is passed base64-encoded; each result is
framed by a random marker so no output can be mistaken for the end of another.
"""

from __future__ import annotations

import asyncio
import base64
import re
import secrets
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

import asyncssh


@dataclass(frozen=True)
class Result:
    exit_status: int
    stdout: str  # stdout and stderr, merged in order
    stderr: str = ""


class ShellError(Exception):
    """The remote shell died or stopped answering."""


class RemoteShell:
    def __init__(self, process: asyncssh.SSHClientProcess) -> None:
        self._proc = process
        self._lock = asyncio.Lock()
        self._broken = False

    @classmethod
    async def open(cls, conn: asyncssh.SSHClientConnection) -> RemoteShell:
        proc = await conn.create_process(
            "exec /bin/sh", encoding="utf-8", errors="replace", stderr=asyncssh.STDOUT
        )
        return cls(proc)

    async def run(
        self, argv: Sequence[str], input: str | None = None, timeout: float = 30.0
    ) -> Result:
        if self._broken:
            raise ShellError("remote shell is no longer usable")
        marker = "__ecmptui_" + secrets.token_hex(8)
        cmd = shlex.join(argv)
        if input is not None:
            data = base64.b64encode(input.encode()).decode()
            line = f"printf %s {data} | base64 -d | {cmd} 2>&1"
        else:
            line = f"{cmd} </dev/null 2>&1"
        script = f"{line}; printf '\\n{marker} %d\\n' \"$?\"\n"
        done = re.compile(rf"\n{marker} (\d+)\n$")
        async with self._lock:
            if self._broken:
                raise ShellError("remote shell is no longer usable")
            try:
                self._proc.stdin.write(script)
                out = await asyncio.wait_for(self._read_until(done), timeout)
            except (TimeoutError, asyncssh.Error, OSError, ShellError) as exc:
                self.close()
                raise ShellError(f"remote shell failed: {exc or type(exc).__name__}") from exc
            except BaseException:
                # Cancelled mid-command: the command may still run and its output is
                # unread. The shell can never be trusted again (its next result would
                # carry this one's output, or wait behind a hung command): close it.
                self.close()
                raise
        m = done.search(out)
        assert m is not None
        return Result(int(m.group(1)), out[: m.start()])

    async def _read_until(self, done: re.Pattern[str]) -> str:
        buf = ""
        while not done.search(buf):
            chunk = await self._proc.stdout.read(65536)
            if not chunk:
                raise ShellError("remote shell closed")
            buf += chunk
        return buf

    @property
    def usable(self) -> bool:
        return not self._broken

    def close(self) -> None:
        self._broken = True
        self._proc.close()
