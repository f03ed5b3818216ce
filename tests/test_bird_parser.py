"""The birdc parser on real output captured from BIRD 2 in the lab, in every session state."""

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecmptui.node import bird

FIX = Path(__file__).parent / "fixtures" / "birdc"


def parse(name: str) -> list[bird.ProtocolInfo]:
    return bird.parse_protocols((FIX / name).read_text())


def test_established_with_one_channel() -> None:
    [p] = parse("established.txt")
    assert (p.name, p.proto, p.state, p.bgp_state) == ("peer1", "BGP", "up", "Established")
    assert p.established and p.since == "2026-11-26 18:10:12.459"
    assert p.neighbor_address == "198.18.11.1" and p.neighbor_as == 65530 and p.local_as == 65000
    assert p.neighbor_id == "198.18.1.1"
    assert p.hold_timer == "2.568/3" and p.keepalive_timer == "0.732/1"
    assert p.last_error is None
    [ch] = p.channels
    assert (ch.name, ch.state, ch.imported, ch.exported, ch.preferred) == ("ipv4", "UP", 0, 1, 0)
    assert p.routes_exported == 1


def test_router_table_with_active_and_last_error() -> None:
    protos = {p.name: p for p in parse("router_all.txt")}
    assert set(protos) == {"device1", "kernel1", "bfd1", "s1", "s2"}
    assert protos["s1"].established and protos["s1"].routes_imported == 1
    s2 = protos["s2"]
    assert s2.state == "start" and s2.bgp_state == "Active" and not s2.established
    assert s2.info == "Active Socket: Connection refused"
    assert s2.last_error == "Socket: Connection refused"
    assert s2.channels[0].state == "DOWN" and s2.routes_imported == 0
    assert protos["kernel1"].channels[0].exported == 1


def test_brief_table_without_details() -> None:
    protos = {p.name: p for p in parse("router_brief.txt")}
    assert protos["s1"].established
    assert protos["s1"].bgp_state is None and protos["s1"].channels == []
    assert protos["s2"].info.startswith("Active")


@pytest.mark.parametrize(
    "fixture,state,error",
    [
        ("opensent.txt", "OpenSent", "Socket: Connection refused"),
        ("connect.txt", "Connect", None),
        ("idle_error_two_channels.txt", "Idle", "Received: Bad peer AS"),
        ("idle_disabled.txt", "Down", None),
    ],
)
def test_every_session_state(fixture: Any, state: Any, error: Any) -> None:
    [p] = parse(fixture)
    assert p.bgp_state == state and not p.established
    assert p.last_error == error


def test_two_channels() -> None:
    [p] = parse("idle_error_two_channels.txt")
    assert [c.name for c in p.channels] == ["ipv4", "ipv6"]


def test_mixed_table() -> None:
    protos = parse("mixed_all.txt")
    assert [p.name for p in protos] == ["device1", "conn", "dual"]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "BIRD 2.0.12 ready.\n",
        "Unable to connect to server",
        "Name Proto Table State Since Info\n  detail: before\n",
        "Name Proto Table State Since Info\nx y z bogus now\n",
    ],
)
def test_not_birdc_output_raises_own_error(text: str) -> None:
    with pytest.raises(bird.BirdParseError):
        bird.parse_protocols(text)


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_arbitrary_text_never_raises_anything_else(text: str) -> None:
    try:
        bird.parse_protocols(text)
    except bird.BirdParseError:
        pass


HEADER = "Name       Proto      Table      State  Since         Info\n"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=60), max_size=20)
)
def test_header_plus_arbitrary_lines_never_raises_anything_else(lines: Any) -> None:
    try:
        bird.parse_protocols(HEADER + "\n".join(lines))
    except bird.BirdParseError:
        pass


def test_route_prefixes() -> None:
    text = (
        "BIRD 2.0.12 ready.\nTable master4:\n"
        "203.0.113.10/32      unicast [s1 18:10:12.460] * (100) [AS65000i]\n"
        "\tvia 198.18.11.2 on rt-s1\n"
        "                     unicast [s2 18:10:13.000] (100) [AS65000i]\n"
    )
    assert bird.parse_route_prefixes(text) == ["203.0.113.10/32"]


def test_bfd_sessions_as_birdc_prints_them() -> None:
    from ecmptui.node.bird import parse_bfd_sessions

    out = (
        "BIRD 2.0.12 ready.\nbfd1:\n"
        "IP address                Interface  State      Since         Interval  Timeout\n"
        "169.254.255.1             ---        Up         2026-11-27 08:22:06.617    0.100"
        "    0.300\n"
        "169.254.255.2             ---        Down       2026-11-27 08:22:06.679    1.000"
        "    0.000\n"
        "fc00::e                   ---        Up         2026-11-27 08:22:06.702    0.100"
        "    0.300\n"
    )
    # regression: IPv6 peers were not counted ("2/2 up" on a dual stack with four sessions)
    assert parse_bfd_sessions(out) == [
        ("169.254.255.1", "Up"),
        ("169.254.255.2", "Down"),
        ("fc00::e", "Up"),
    ]
    assert parse_bfd_sessions("BIRD 2.0.12 ready.\nNo BFD protocols\n") == []
