"""The serve process's shared feed, spoken to directly over its socket: roles come from the
server, not from the app, and a session's status reaches it intact."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import fixed_data
from ecmptui.config import load
from ecmptui.deployment.status import DeploymentStatus
from ecmptui.serve.audit import Audit, Who
from ecmptui.serve.feed import Hub


@pytest.fixture
async def hub(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> AsyncIterator[Any]:
    cfg = tmp_path / "down.toml"
    cfg.write_text('target = "lab"\nlab = "zz9"\n')  # never up: status reports that
    h = Hub(load(cfg), rate=10, audit=Audit("text"))
    await h.start()
    yield h
    await h.stop()
    assert not h.dir.exists()  # the socket's directory is gone


async def feed(hub: Hub, who: Who) -> Any:
    token = hub.register(who)
    reader, writer = await asyncio.open_unix_connection(str(hub.path))
    writer.write(json.dumps({"k": "hello", "token": token}).encode() + b"\n")
    hello = json.loads(await reader.readline())
    return reader, writer, hello


async def reply(reader: Any, req: int) -> dict:
    while True:
        msg = json.loads(await asyncio.wait_for(reader.readline(), 10))
        if msg.get("k") == "result" and msg.get("req") == req:
            return msg


async def test_a_viewer_token_cannot_act_whatever_its_app_asks(
    hub: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="ecmptui.serve")
    reader, writer, hello = await feed(hub, Who("127.0.0.1:1", "eve", "SHA256:x", "viewer"))
    assert hello["role"] == "viewer" and hello["can_act"] is False and hello["rate"] == 10
    reqs: list[dict[str, Any]] = [
        {"k": "act", "node": "n1", "action": "withdraw"},
        {"k": "act", "node": "core1", "action": "kill-bird", "router": True},
        {"k": "job", "job": "deprovision"},
    ]
    for n, req in enumerate(reqs):
        writer.write(json.dumps({**req, "req": n}).encode() + b"\n")
        msg = await reply(reader, n)
        assert msg["ok"] is False and msg["message"].startswith("read-only session")
    assert caplog.text.count("action-refused") == 3 and "user=eve" in caplog.text
    writer.close()


async def test_an_operator_request_reaches_the_deployment(hub: Any) -> None:
    reader, writer, hello = await feed(hub, Who("127.0.0.1:2", "ann", "SHA256:y", "operator"))
    assert hello["can_act"] is True and hello["lab_up"] is False
    writer.write(
        json.dumps({"k": "act", "node": "n1", "action": "withdraw", "req": 7}).encode() + b"\n"
    )
    msg = await reply(reader, 7)
    assert msg["ok"] is False and "lab" in msg["message"]  # tried: the lab is down
    writer.write(json.dumps({"k": "jump", "req": 8}).encode() + b"\n")
    assert "unknown request" in (await reply(reader, 8))["message"]
    writer.close()


async def test_status_errors_reach_every_session(hub: Any) -> None:
    reader, writer, _ = await feed(hub, Who(role="viewer"))
    while True:
        msg = json.loads(await asyncio.wait_for(reader.readline(), 10))
        if msg["k"] == "status":
            break
    assert msg["status"] is None and "zz9" in msg["error"]
    writer.close()


async def test_unknown_and_reused_tokens_get_nothing(hub: Any) -> None:
    async def hello(token: str) -> Any:
        reader, writer = await asyncio.open_unix_connection(str(hub.path))
        writer.write(json.dumps({"k": "hello", "token": token}).encode() + b"\n")
        return writer, await asyncio.wait_for(reader.readline(), 10)

    token = hub.register(Who(role="viewer"))
    first, line = await hello(token)
    assert json.loads(line)["k"] == "hello"
    for t in ("f" * 32, token):  # made up; held by the session's app already
        writer, line = await hello(t)
        assert line == b""
        writer.close()
    first.close()
    hub.unregister(token)
    writer, line = await hello(token)  # the session ended: its token is gone
    assert line == b""
    writer.close()


def test_a_status_survives_the_trip_to_a_session() -> None:
    st = fixed_data.STATUS
    assert DeploymentStatus.from_json(json.loads(json.dumps(st.to_json()))) == st


async def test_a_session_keeps_no_more_action_timings_than_its_timeline(tmp_path: Path) -> None:
    from ecmptui.serve.client import FeedCockpit
    from ecmptui.traffic.model import MAX_TIMELINE, ActionRecord

    cfg = tmp_path / "down.toml"
    cfg.write_text('target = "lab"\nlab = "zz9"\n')
    fc = FeedCockpit(load(cfg), str(tmp_path / "feed.sock"), "token", read_only=True)
    for i in range(MAX_TIMELINE + 50):  # a served session that lives for days
        rec = ActionRecord(float(i), "node1", "withdraw", fib_ms=float(i) / 10)
        fc._dispatch({"k": "action", "id": i, "record": rec.__dict__})
    assert fc.fib_ms(float(MAX_TIMELINE + 49)) == pytest.approx((MAX_TIMELINE + 49) / 10)
    assert fc.fib_ms(0.0) is None and len(fc._fib) == MAX_TIMELINE
