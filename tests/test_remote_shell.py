"""The persistent remote shell against a real asyncssh server running a real /bin/sh
(no lab, no root)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import asyncssh
import pytest

from ecmptui.node.remote_shell import RemoteShell, ShellError


async def _sh_session(process: asyncssh.SSHServerProcess) -> None:
    local = subprocess.Popen(
        ["/bin/sh"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        await process.redirect(stdin=local.stdin, stdout=local.stdout)
        await process.wait_closed()
    finally:
        local.kill()
        local.wait()
        process.exit(0)


@pytest.fixture
async def shell_conn() -> AsyncIterator[Any]:
    server_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    authorized = asyncssh.import_authorized_keys(client_key.export_public_key().decode())
    server = await asyncssh.create_server(
        asyncssh.SSHServer,
        "127.0.0.1",
        0,
        server_host_keys=[server_key],
        authorized_client_keys=authorized,
        process_factory=_sh_session,
    )
    port = server.sockets[0].getsockname()[1]
    conn = await asyncssh.connect(
        "127.0.0.1",
        port,
        username="test",
        known_hosts=None,
        client_keys=[client_key],
        agent_path=None,
        config=None,
    )
    try:
        yield conn
    finally:
        conn.close()
        server.close()


async def test_commands_run_in_turn_with_their_exit_status(shell_conn: Any) -> None:
    shell = await RemoteShell.open(shell_conn)
    ok = await shell.run(["echo", "one two"])
    bad = await shell.run(["sh", "-c", "echo oops; exit 3"])
    fed = await shell.run(["cat"], input="line 1\nline 2\n")
    assert (ok.exit_status, ok.stdout) == (0, "one two\n")
    assert (bad.exit_status, bad.stdout) == (3, "oops\n")
    assert fed.stdout == "line 1\nline 2\n"
    shell.close()


async def test_a_cancelled_command_closes_the_shell_instead_of_leaking_into_the_next(
    shell_conn: Any,
) -> None:
    shell = await RemoteShell.open(shell_conn)
    task = asyncio.create_task(shell.run(["sh", "-c", "echo early; sleep 5; echo late"]))
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert shell.usable is False
    with pytest.raises(ShellError):
        await shell.run(["echo", "next"])
    fresh = await RemoteShell.open(shell_conn)  # a new shell is clean
    res = await fresh.run(["echo", "next"])
    assert res.stdout == "next\n"
    fresh.close()


async def test_a_command_past_its_timeout_breaks_the_shell(shell_conn: Any) -> None:
    shell = await RemoteShell.open(shell_conn)
    with pytest.raises(ShellError):
        await shell.run(["sleep", "5"], timeout=0.3)
    assert shell.usable is False
