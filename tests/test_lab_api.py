"""The lab's Metal API, driven by unmodified packet-python, and the servers it makes."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import packet
import pytest
import requests

from ecmptui.lab.control import LabInfo

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def manager(lab: LabInfo) -> Iterator[Any]:
    os.environ["REQUESTS_CA_BUNDLE"] = lab.ca_file
    m = packet.Manager(auth_token=lab.token())
    m.end_point = lab.endpoint
    yield m
    os.environ.pop("REQUESTS_CA_BUNDLE", None)


def wait_active(m: packet.Manager, device_id: str, timeout: float = 10) -> packet.Device:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dev = m.get_device(device_id)
        if dev.state == "active":
            return dev
        assert dev.state in ("queued", "provisioning"), dev.state
        time.sleep(0.05)
    raise AssertionError(f"device {device_id} not active after {timeout} s")


def raw(
    lab: LabInfo, method: str, path: str, body: bytes | None = None, token: str | None = None
) -> Any:
    return requests.request(
        method,
        f"https://{lab.endpoint}/{path}",
        data=body,
        headers={
            "X-Auth-Token": lab.token() if token is None else token,
            "Content-Type": "application/json",
        },
        verify=lab.ca_file,
        timeout=10,
    )


def test_catalog(manager: Any, lab: LabInfo) -> None:
    assert [p.id for p in manager.list_projects()] == [lab.project_id]
    assert {"t1.small", "c3.medium"} <= {p.slug for p in manager.list_plans()}
    assert [m.code for m in manager.list_metros()] == ["lab"]
    assert {"debian_12", "debian_12_plain"} <= {o.slug for o in manager.list_operating_systems()}


def test_guide_flow_with_packet_python(manager: Any, lab: LabInfo, ssh_keypair: Any) -> None:
    key_path, pub = ssh_keypair
    pid = lab.project_id
    key = manager.create_project_ssh_key(pid, "ecmptui-test", pub)
    assert key.fingerprint.count(":") == 15
    devices = [
        manager.create_device(
            pid,
            f"api-t{i}",
            "t1.small",
            metro="lab",
            operating_system="debian_12",
            project_ssh_keys=[key.id],
        )
        for i in (1, 2)
    ]
    assert all(d.state in ("queued", "provisioning") for d in devices)
    devices = [wait_active(manager, d.id) for d in devices]
    ip = manager.reserve_ip_address(pid, "public_ipv4", 1, metro="lab", tags=["t-flow"])
    try:
        assert ip.cidr == 32 and ip.address.startswith("203.0.113.")
        if manager.get_bgp_config(pid).status != "enabled":
            manager.enable_project_bgp_config(pid, 65000, "local")
        assert manager.get_bgp_config(pid).status == "enabled"
        for dev in devices:
            sess = manager.create_bgp_session(dev.id, "ipv4")
            assert sess.address_family == "ipv4" and sess.status == "down,down"  # per router
            [listed] = manager.get_bgp_sessions(dev.id)
            assert listed.id == sess.id and listed.learned_routes == []
            [nb] = manager.call_api(f"devices/{dev.id}/bgp/neighbors")["bgp_neighbors"]
            assert nb["customer_as"] == 65000 and nb["peer_as"] == 65530
            assert {"route": f"{ip.address}/32", "exact": True} in nb["routes_in"]
            assert nb["peer_ips"] and nb["customer_ip"]

        async def login(dev: Any) -> tuple[str, Any]:
            mgmt = next(a["address"] for a in dev.ip_addresses if a["public"])
            async with asyncssh.connect(
                mgmt, username="root", client_keys=[str(key_path)], known_hosts=lab.known_hosts
            ) as conn:
                res = await conn.run("ip -j -4 addr show", check=True)
            return mgmt, json.loads(res.stdout)

        for dev in devices:
            mgmt, addrs = asyncio.run(login(dev))
            mine = {a["local"] for link in addrs for a in link.get("addr_info", [])}
            private = next(a["address"] for a in dev.ip_addresses if not a["public"])
            assert {mgmt, private} <= mine, mine
            others = [d for d in devices if d.id != dev.id]
            for other in others:  # it is its own namespace, not the other server's
                assert not {a["address"] for a in other.ip_addresses} & mine
    finally:
        for dev in devices:
            manager.call_api(f"devices/{dev.id}", type="DELETE")
        ip.delete()
        manager.call_api(f"ssh-keys/{key.id}", type="DELETE")
    remaining = {d.id for d in manager.list_devices(pid)}
    assert not remaining & {d.id for d in devices}


def test_unknown_host_key_is_refused(
    manager: Any, lab: LabInfo, ssh_keypair: Any, tmp_path: Path
) -> None:
    key_path, pub = ssh_keypair
    key = manager.create_project_ssh_key(lab.project_id, "hk", pub)
    dev = manager.create_device(
        lab.project_id,
        "hk-t",
        "t1.small",
        metro="lab",
        operating_system="debian_12",
        project_ssh_keys=[key.id],
    )
    try:
        dev = wait_active(manager, dev.id)
        mgmt = next(a["address"] for a in dev.ip_addresses if a["public"])
        wrong = tmp_path / "known_hosts"
        other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
        wrong.write_text(f"{mgmt} {other}")

        async def login() -> None:
            async with asyncssh.connect(
                mgmt, username="root", client_keys=[str(key_path)], known_hosts=str(wrong)
            ):
                pass

        with pytest.raises(asyncssh.HostKeyNotVerifiable):
            asyncio.run(login())
    finally:
        manager.call_api(f"devices/{dev.id}", type="DELETE")
        manager.call_api(f"ssh-keys/{key.id}", type="DELETE")


def _counts(m: Any, lab: LabInfo) -> Any:
    return (
        len(m.list_devices(lab.project_id)),
        len(m.list_project_ips(lab.project_id)),
        len(m.call_api(f"projects/{lab.project_id}/ssh-keys")["ssh_keys"]),
    )


@pytest.mark.parametrize(
    "method,path,body,token,status,text",
    [
        ("GET", "projects", None, "wrong-token", 401, "Invalid authentication token"),
        (
            "POST",
            "projects/{pid}/devices",
            b'{"hostname": "x"}',
            "",
            401,
            "Invalid authentication token",
        ),
        ("GET", "devices/00000000-0000-0000-0000-000000000000", None, None, 404, "Not found"),
        ("GET", "projects/nope/devices", None, None, 404, "Not found"),
        ("DELETE", "ips/nope", None, None, 404, "Not found"),
        (
            "POST",
            "projects/{pid}/devices",
            b'{"hostname": "bad", "plan": "m9.huge", "metro": "lab", "operating_system": "debian_12"}',  # noqa: E501
            None,
            422,
            "plan 'm9.huge' is not a valid plan",
        ),
        (
            "POST",
            "projects/{pid}/ips",
            b'{"type": "public_ipv4", "quantity": 0}',
            None,
            422,
            "quantity must be a positive integer",
        ),
        (
            "POST",
            "projects/{pid}/devices",
            b'{"hostname": ',
            None,
            422,
            "request body is not valid JSON",
        ),
        (
            "POST",
            "projects/{pid}/ssh-keys",
            b'{"label": "x", "key": "ssh-rsa not-a-key"}',
            None,
            422,
            "key is not a valid OpenSSH public key",
        ),
    ],
)
def test_bad_input_gets_real_error_shape_and_changes_nothing(
    manager: Any,
    lab: LabInfo,
    method: Any,
    path: str,
    body: Any,
    token: Any,
    status: Any,
    text: str,
) -> None:
    before = _counts(manager, lab)
    resp = raw(lab, method, path.format(pid=lab.project_id), body, token)
    assert resp.status_code == status
    assert resp.headers["Content-Type"].startswith("application/json")
    assert resp.json() == {"errors": [text]}
    assert _counts(manager, lab) == before


def test_session_with_unknown_address_family_is_422(
    manager: Any, lab: LabInfo, ssh_keypair: Any
) -> None:
    dev = manager.create_device(
        lab.project_id, "af-t", "t1.small", metro="lab", operating_system="debian_12"
    )
    try:
        resp = raw(lab, "POST", f"devices/{dev.id}/bgp/sessions", b'{"address_family": "ipv9"}')
        assert resp.status_code == 422
        assert resp.json() == {"errors": ["address_family must be ipv4 or ipv6"]}
        assert manager.get_bgp_sessions(dev.id) == []
    finally:
        wait_active(manager, dev.id)
        manager.call_api(f"devices/{dev.id}", type="DELETE")


def test_packet_python_surfaces_api_errors(manager: Any, lab: LabInfo) -> None:
    with pytest.raises(packet.baseapi.ResponseError, match="Error 422: quantity must be"):
        manager.reserve_ip_address(lab.project_id, "public_ipv4", 0, metro="lab")
    bad = packet.Manager(auth_token="not-the-token")
    bad.end_point = lab.endpoint
    with pytest.raises(packet.baseapi.ResponseError, match="Error 401"):
        bad.list_projects()


def test_a_server_number_can_be_reused_at_once(manager: Any, lab: LabInfo) -> None:
    """Deleting a device and creating the next right away reuses its namespace number; the
    new one must be reachable at once (no stale links or ARP entries)."""
    import socket

    for i in range(3):
        dev = manager.create_device(
            lab.project_id, f"reuse{i}", "t1.small", metro="lab", operating_system="debian_12"
        )
        dev = wait_active(manager, dev.id)
        mgmt = next(a["address"] for a in dev.ip_addresses if a["public"])
        with socket.create_connection((mgmt, 22), timeout=2) as s:
            assert s.recv(64).startswith(b"SSH-2.0-")
        manager.call_api(f"devices/{dev.id}", type="DELETE")
