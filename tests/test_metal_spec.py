"""Every response of every implemented endpoint of the lab API validates against Metal's
published OpenAPI spec, every `href` in a response resolves, every id is a UUID."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from conftest import Deployed
from ecmptui.lab.control import LabInfo
from metal_spec import LabApi, validate

pytestmark = pytest.mark.lab


def _ids(data: Any, path: str = "") -> Any:
    """Every `id` in a response, with where it is."""
    if isinstance(data, dict):
        out = [(path + "id", data["id"])] if isinstance(data.get("id"), str) else []
        for k, v in data.items():
            out += _ids(v, f"{path}{k}.")
        return out
    if isinstance(data, list):
        return [x for item in data for x in _ids(item, path)]
    return []


@pytest.fixture(scope="module")
def api(lab: LabInfo, deployed: Deployed) -> Any:
    return LabApi(lab)


def _responses(api: LabApi, lab: LabInfo) -> list[tuple[str, str, object]]:
    pid = lab.project_id
    devices = api.call("GET", f"projects/{pid}/devices").json()["devices"]
    dev = devices[0]["id"]
    ip = api.call("GET", f"projects/{pid}/ips").json()["ip_addresses"][0]["id"]
    sess = api.call("GET", f"devices/{dev}/bgp/sessions").json()["bgp_sessions"][0]["id"]
    key = api.call("GET", "ssh-keys").json()["ssh_keys"][0]["id"]
    assignment = devices[0]["ip_addresses"][0]["id"]
    gets = [
        ("User", "user"),
        ("ProjectList", "projects"),
        ("Project", f"projects/{pid}"),
        ("PlanList", "plans"),
        ("MetroList", "locations/metros"),
        ("Metro", f"locations/metros/{devices[0]['metro']['id']}"),
        ("FacilityList", "facilities"),
        ("OperatingSystemList", "operating-systems"),
        ("SSHKeyList", "ssh-keys"),
        ("SSHKeyList", f"projects/{pid}/ssh-keys"),
        ("SSHKey", f"ssh-keys/{key}"),
        ("DeviceList", f"projects/{pid}/devices"),
        ("Device", f"devices/{dev}"),
        ("IPAssignmentList", f"devices/{dev}/ips"),
        ("IPReservationList", f"projects/{pid}/ips"),
        ("IPReservation", f"ips/{ip}"),
        ("IPAssignment", f"ips/{assignment}"),
        ("BgpConfig", f"projects/{pid}/bgp-config"),
        ("BgpSessionList", f"devices/{dev}/bgp/sessions"),
        ("BgpSessionList", f"projects/{pid}/bgp/sessions"),
        ("BgpSession", f"bgp/sessions/{sess}"),
        ("BgpSessionNeighbors", f"devices/{dev}/bgp/neighbors"),
    ]
    out = []
    for model, path in gets:
        r = api.call("GET", path)
        assert r.status_code == 200, (path, r.status_code, r.text)
        out.append((model, path, r.json()))
    # writes: a key added and removed, a device's description changed and put back
    pub = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDtVbJ1e4f9l9Xbb4Vv5x0Q3o9b9w0ZlR9Wm5yLd4q3k spec"
    r = api.call("POST", f"projects/{pid}/ssh-keys", {"label": "spec-check", "key": pub})
    assert r.status_code == 201, r.text
    out.append(("SSHKey", "POST ssh-keys", r.json()))
    assert api.call("DELETE", f"ssh-keys/{r.json()['id']}").status_code == 204
    before = api.call("GET", f"devices/{dev}").json()
    r = api.call("PUT", f"devices/{dev}", {"description": "checked against the spec"})
    assert r.status_code == 200 and r.json()["description"] == "checked against the spec"
    out.append(("Device", "PUT devices", r.json()))
    api.call("PUT", f"devices/{dev}", {"description": before.get("description", "")})
    return out


def test_every_response_validates_against_the_published_spec(api: Any, lab: LabInfo) -> None:
    problems = []
    for model, path, data in _responses(api, lab):
        problems += [f"{path}: {p}" for p in validate(model, data)]
    assert problems == []


def test_every_href_resolves_and_every_id_is_a_uuid(api: Any, lab: LabInfo) -> None:
    hrefs, ids = set(), []
    for _model, path, data in _responses(api, lab):
        if path != "POST ssh-keys":  # that key was deleted again, on purpose
            hrefs.update(api.hrefs(data))
        ids += [(path, where, value) for where, value in _ids(data)]
    unresolved = sorted(h for h in hrefs if api.call("GET", h).status_code != 200)
    assert unresolved == []
    not_uuid = []
    for path, where, value in ids:
        try:
            uuid.UUID(value)
        except ValueError:
            not_uuid.append(f"{path}: {where}={value}")
    assert not_uuid == []


def test_pages_and_filters(api: Any, lab: LabInfo) -> None:
    pid = lab.project_id
    first = api.call("GET", f"projects/{pid}/devices?per_page=1").json()
    assert len(first["devices"]) == 1 and first["meta"]["previous"] is None
    assert first["meta"]["total"] >= 2 and first["meta"]["next"] is not None
    second = api.call("GET", first["meta"]["next"]["href"]).json()
    assert len(second["devices"]) == 1 and second["devices"] != first["devices"]
    assert second["meta"]["current_page"] == 2
    assert api.call("GET", f"projects/{pid}/devices?per_page=0").status_code == 422
    public = api.call("GET", f"projects/{pid}/ips?type=public_ipv4").json()["ip_addresses"]
    assert public and all(i["type"] == "public_ipv4" for i in public)
    assert api.call("GET", f"projects/{pid}/ips?type=private_ipv4").json() == {"ip_addresses": []}
