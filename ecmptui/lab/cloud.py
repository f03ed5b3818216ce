"""The lab's Metal-compatible objects and their effects on the fabric.

Field names follow the Metal API (and packet-python's fixtures). Every public method either
returns JSON-ready data or raises ApiError with the status and message the real API would give.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import os
import re
import shutil
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import asyncssh

from ecmptui.errors import EcmpError
from ecmptui.family import Family, host_prefix
from ecmptui.jsonish import JsonObject
from ecmptui.lab import aptproxy, fabric, firstboot, image
from ecmptui.lab.instance import (
    EIP6_POOL,
    EIP_POOL,
    MAX_NODES,
    PROJECT_BLOCK6,
    ROUTER_ASN,
    ROUTER_PEER_IPS,
    ROUTER_PEER_IPS6,
    ROUTERS,
    LabInstance,
    mgmt_addr,
    mgmt_gateway,
    router_link_addr,
    router_link_addr6,
    server_link_addr,
    server_link_addr6,
)
from ecmptui.lab.machine import Machine
from ecmptui.lab.router import Backbone, RouterPeer, learned_from, session_protocol

log = logging.getLogger("ecmptui.lab")
BOOT_TIMEOUT = 15.0  # machine boot until sshd accepts

METRO = {
    "id": "5d9d2e5e-0000-4000-8000-00000000001a",
    "code": "lab",
    "name": "Local lab",
    "country": "ZZ",
    "href": "/locations/metros/5d9d2e5e-0000-4000-8000-00000000001a",
}
PLANS = [
    {
        "id": "6e8b0b5c-0000-4000-8000-000000000001",
        "slug": "t1.small",
        "name": "t1.small.x86",
        "line": "baremetal",
        "description": "The guide's plan (a lab namespace underneath)",
        "specs": {"cpus": [{"count": 1, "type": "lab"}], "memory": {"total": "8GB"}},
        "pricing": {"hour": 0.0},
        "available_in": [],
        "available_in_metros": [{"href": METRO["href"]}],
    },
    {
        "id": "6e8b0b5c-0000-4000-8000-000000000002",
        "slug": "c3.medium",
        "name": "c3.medium.x86",
        "line": "baremetal",
        "description": "A larger plan (the same lab namespace underneath)",
        "specs": {"cpus": [{"count": 1, "type": "lab"}], "memory": {"total": "64GB"}},
        "pricing": {"hour": 0.0},
        "available_in": [],
        "available_in_metros": [{"href": METRO["href"]}],
    },
]
OPERATING_SYSTEMS = [
    {
        "slug": "debian_12",
        "name": "Debian 12 (lab image: BIRD 2, nginx, nftables installed)",
        "distro": "debian",
        "version": "12",
        "provisionable_on": ["t1.small", "c3.medium"],
    },
    {
        "slug": "debian_12_plain",
        "name": "Debian 12, plain (like a fresh Metal server)",
        "distro": "debian",
        "version": "12",
        "provisionable_on": ["t1.small", "c3.medium"],
    },
]
# operating system slug -> lab image (ecmptui.lab.image)
OS_IMAGES = {"debian_12": "server", "debian_12_plain": "plain"}
DEVICE_ACTIONS = ("reboot", "power_off", "power_on")


class ApiError(Exception):
    """An API error: HTTP status and the messages for `{"errors": [...]}`."""

    def __init__(self, status: int, *messages: str) -> None:
        super().__init__(f"{status}: {'; '.join(messages)}")
        self.status = status
        self.messages = list(messages)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _single_page(href: str, total: int) -> JsonObject:
    """Metal's pagination meta for a listing that fits in one page."""
    page = {"href": f"{href}?page=1"}
    return {
        "first": page,
        "previous": None,
        "self": page,
        "next": None,
        "last": page,
        "total": total,
        "current_page": 1,
        "last_page": 1,
    }


DEFAULT_PER_PAGE = 10
MAX_PER_PAGE = 1000


def _positive_int(query: JsonObject, key: str, default: int, top: int) -> int:
    raw = query.get(key, default)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ApiError(422, f"{key} must be a positive integer") from None
    _require(1 <= value <= top, f"{key} must be between 1 and {top}")
    return value


def _paginate(items: list[Any], key: str, href: str, query: JsonObject) -> JsonObject:
    """One page of `items` with Metal's meta (`page`, `per_page`; previous/next null at the
    ends, as the real API returned them)."""
    per_page = _positive_int(query, "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)
    last = max(1, -(-len(items) // per_page))
    page = _positive_int(query, "page", 1, max(last, 1))

    def link(n: int) -> JsonObject:
        return {"href": f"{href}?page={n}&per_page={per_page}"}

    return {
        key: items[(page - 1) * per_page : page * per_page],
        "meta": {
            "first": link(1),
            "previous": link(page - 1) if page > 1 else None,
            "self": link(page),
            "next": link(page + 1) if page < last else None,
            "last": link(last),
            "total": len(items),
            "current_page": page,
            "last_page": last,
        },
    }


def assignment_id(device_id: str, kind: str) -> str:
    """A stable UUID for one of a device's IP assignments (mgmt or private)."""
    return str(uuid.uuid5(uuid.UUID(device_id), f"ecmptui-lab-{kind}"))


HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def valid_hostname(name: object) -> bool:
    """RFC 1123: dot-separated labels of letters, digits and inner hyphens (no empty one)."""
    return (
        isinstance(name, str)
        and 0 < len(name) <= 63
        and all(HOST_LABEL.fullmatch(label) for label in name.split("."))
    )


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ApiError(422, message)


def _tags(body: JsonObject) -> list[str]:
    tags: Any = body.get("tags") or []
    _require(
        isinstance(tags, list) and all(isinstance(t, str) for t in tags),
        "tags must be a list of strings",
    )
    return tags


@dataclass
class Device:
    id: str
    n: int
    hostname: str
    plan: str
    os: str
    tags: list[str]
    ssh_keys: list[str]
    created_at: str
    state: str = "queued"
    host_key: str = ""
    description: str | None = None
    failure: str | None = None  # why it failed (Metal's provisioning event), if it did
    failed_at: str | None = None
    machine: Machine | None = None


def _free_address(family: Family, used: set[str]) -> str | None:
    """The first free EIP of the lab's pool for `family` (IPv4: from .10 on)."""
    if family is Family.IPV4:
        hosts = [str(a) for a in EIP_POOL.hosts() if int(a) & 0xFF >= 10]
    else:
        base = EIP6_POOL.network_address
        hosts = [str(base + i) for i in range(0x10, 0x10 + 256)]
    return next((a for a in hosts if a not in used), None)


class Cloud:
    """One lab project with its keys, devices, EIPs, BGP config and sessions."""

    def __init__(self, lab: LabInstance, slot: int, router: Backbone, project_id: str) -> None:
        self.lab, self.slot, self.router = lab, slot, router
        self.apt_proxy = aptproxy.AptProxy(lab, slot)
        self.lock = threading.RLock()
        self.project = {
            "id": project_id,
            "name": f"ecmptui lab {lab.name}",
            "created_at": _now(),
            "updated_at": _now(),
            "href": f"/projects/{project_id}",
        }
        self.ssh_keys: dict[str, dict] = {}
        self.devices: dict[str, Device] = {}
        self.ips: dict[str, dict] = {}
        self.bgp_config: JsonObject | None = None
        self.sessions: dict[str, dict] = {}

    # -- persistence: a restarted supervisor adopts the running lab -----------------------
    def save(self) -> None:
        """Write every API object to the state file (call with the lock held)."""
        devices = [
            {k: v for k, v in vars(d).items() if k != "machine"} for d in self.devices.values()
        ]
        data = {
            "project": self.project,
            "ssh_keys": self.ssh_keys,
            "devices": devices,
            "ips": self.ips,
            "bgp_config": self.bgp_config,
            "sessions": self.sessions,
        }
        tmp = self.lab.cloud_file.with_suffix(".new")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        tmp.replace(self.lab.cloud_file)

    def load(self) -> None:
        """Take back the objects of a supervisor that died; its machines still run."""
        data = json.loads(self.lab.cloud_file.read_text())
        self.project = data["project"]
        self.ssh_keys, self.ips = data["ssh_keys"], data["ips"]
        self.bgp_config, self.sessions = data["bgp_config"], data["sessions"]
        for raw in data["devices"]:
            dev = Device(**raw)
            dev.machine = self._machine(dev)
            if dev.state in ("queued", "provisioning", "rebooting", "powering_on") or (
                dev.state == "active" and not dev.machine.running()
            ):
                if dev.machine.running():
                    dev.state = "active"
                else:
                    dev.state, dev.failure = (
                        "failed",
                        "its machine was not running when the lab's supervisor restarted",
                    )
            self.devices[dev.id] = dev

    # -- lookups -------------------------------------------------------------------------
    def _project(self, project_id: str) -> None:
        if project_id != self.project["id"]:
            raise ApiError(404, "Not found")

    def _device(self, device_id: str) -> Device:
        dev = self.devices.get(device_id)
        if dev is None:
            raise ApiError(404, "Not found")
        return dev

    # -- catalog -------------------------------------------------------------------------
    def list_projects(self) -> JsonObject:
        return {"projects": [self.project], "meta": _single_page("/projects", 1)}

    def get_project(self, project_id: str) -> JsonObject:
        self._project(project_id)
        return self.project

    @staticmethod
    def user() -> JsonObject:
        return {
            "id": "00000000-0000-4000-8000-000000000000",
            "full_name": "Lab Operator",
            "email": "operator@lab.invalid",
        }

    # -- SSH keys ------------------------------------------------------------------------
    def add_ssh_key(self, project_id: str | None, body: JsonObject) -> JsonObject:
        if project_id is not None:
            self._project(project_id)
        key: Any = body.get("key")
        label: Any = body.get("label", "")
        _require(isinstance(key, str) and key.strip() != "", "key is required")
        _require(isinstance(label, str), "label must be a string")
        try:
            parsed = asyncssh.import_public_key(key.strip())
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise ApiError(422, "key is not a valid OpenSSH public key") from exc
        fingerprint = parsed.get_fingerprint("md5").removeprefix("MD5:")
        with self.lock:
            kid = str(uuid.uuid4())
            self.ssh_keys[kid] = {
                "id": kid,
                "label": label,
                "key": key.strip(),
                "fingerprint": fingerprint,
                "created_at": _now(),
                "updated_at": _now(),
                "href": f"/ssh-keys/{kid}",
                "entity": {"href": self.project["href"]},
            }
            return self.ssh_keys[kid]

    def list_ssh_keys(self, project_id: str | None) -> JsonObject:
        if project_id is not None:
            self._project(project_id)
        return {"ssh_keys": list(self.ssh_keys.values())}

    def get_ssh_key(self, key_id: str) -> JsonObject:
        if key_id not in self.ssh_keys:
            raise ApiError(404, "Not found")
        return self.ssh_keys[key_id]

    def delete_ssh_key(self, key_id: str) -> None:
        with self.lock:
            if self.ssh_keys.pop(key_id, None) is None:
                raise ApiError(404, "Not found")

    # -- devices -------------------------------------------------------------------------
    def device_json(self, dev: Device) -> JsonObject:
        os_entry = next(o for o in OPERATING_SYSTEMS if o["slug"] == dev.os)
        plan = next(p for p in PLANS if p["slug"] == dev.plan)
        ips = self._assignments(dev)
        return {
            "id": dev.id,
            "short_id": dev.id[:8],
            "hostname": dev.hostname,
            **({"description": dev.description} if dev.description is not None else {}),
            "state": dev.state,
            "tags": dev.tags,
            "billing_cycle": "hourly",
            "user": "root",
            "locked": False,
            "created_at": dev.created_at,
            "updated_at": dev.created_at,
            "operating_system": os_entry,
            "plan": plan,
            "metro": METRO,
            "facility": None,
            "project": {"href": self.project["href"]},
            "ip_addresses": ips,
            "ssh_keys": [{"href": f"/ssh-keys/{k}"} for k in dev.ssh_keys],
            "provisioning_percentage": {"queued": 0, "provisioning": 50}.get(dev.state, 100),
            **({"provisioning_events": [self._failure_event(dev)]} if dev.failure else {}),
            # lab-only: where this server's files live and which host key its sshd presents
            "customdata": {},
            "href": f"/devices/{dev.id}",
        }

    @staticmethod
    def _failure_event(dev: Device) -> JsonObject:
        """Why the device failed, as Metal's provisioning events said it."""
        eid = assignment_id(dev.id, "failure")
        return {
            "id": eid,
            "type": "provisioning.failed",
            "state": "failed",
            "body": dev.failure,
            "interpolated": f"{dev.hostname}: {dev.failure}",
            "created_at": dev.failed_at or dev.created_at,
            "href": f"/events/{eid}",
            "relationships": [{"href": f"/devices/{dev.id}"}],
        }

    def _failed(self, dev: Device, why: str) -> None:
        """Mark the device failed with its reason (call with the lock held)."""
        dev.state, dev.failure, dev.failed_at = "failed", why, _now()
        self.save()

    def _assignments(self, dev: Device) -> list[dict]:
        """The device's public (mgmt) and private IPv4 assignments and its public IPv6 /127
        (from the project's /56), as Metal lists them."""
        parent6 = {
            "network": str(PROJECT_BLOCK6.network_address),
            "cidr": PROJECT_BLOCK6.prefixlen,
            "netmask": str(PROJECT_BLOCK6.netmask),
            "href": f"/ips/{self.block6_id}",
        }
        out = []
        for kind, public, address, cidr, gateway, parent in (
            ("mgmt", True, mgmt_addr(self.slot, dev.n), 24, mgmt_gateway(self.slot), None),
            ("priv", False, server_link_addr(dev.n), 24, router_link_addr(dev.n), None),
            ("pub6", True, server_link_addr6(dev.n), 127, router_link_addr6(dev.n), parent6),
        ):
            aid = assignment_id(dev.id, kind)
            net = ipaddress.ip_network(f"{address}/{cidr}", strict=False)
            out.append(
                {
                    "id": aid,
                    "address_family": net.version,
                    "public": public,
                    "management": True,
                    "address": address,
                    "cidr": cidr,
                    "netmask": str(net.netmask),
                    "network": str(net.network_address),
                    "gateway": gateway,
                    "manageable": True,
                    "enabled": True,
                    "global_ip": False,
                    **({"parent_block": parent} if parent else {}),
                    "assigned_to": {"href": f"/devices/{dev.id}"},
                    "created_at": dev.created_at,
                    "metro": METRO,
                    "href": f"/ips/{aid}",
                }
            )
        return out

    @property
    def block6_id(self) -> str:
        """The id of the project's IPv6 /56 (one per project, as Metal gave every project)."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"ecmptui-lab/{self.project['id']}/ipv6"))

    def block6_json(self) -> JsonObject:
        """The project's IPv6 block: every server's /127 and the IPv6 EIPs come from it."""
        net = PROJECT_BLOCK6
        return {
            "id": self.block6_id,
            "address_family": 6,
            "netmask": str(net.netmask),
            "cidr": net.prefixlen,
            "public": True,
            "management": True,
            "manageable": True,
            "enabled": True,
            "global_ip": False,
            "address": str(net.network_address + 1),
            "network": str(net.network_address),
            "gateway": str(net.network_address + 1),
            "type": "public_ipv6",
            "tags": [],
            "customdata": {},
            "created_at": self.project["created_at"],
            "metro": METRO,
            "project": {"href": self.project["href"]},
            "assignments": [],
            "href": f"/ips/{self.block6_id}",
        }

    def list_devices(self, project_id: str, query: JsonObject | None = None) -> JsonObject:
        self._project(project_id)
        with self.lock:
            devs = sorted(self.devices.values(), key=lambda d: d.n)
            return _paginate(
                [self.device_json(d) for d in devs],
                "devices",
                f"{self.project['href']}/devices",
                query or {},
            )

    def update_device(self, device_id: str, body: JsonObject) -> JsonObject:
        """`PUT /devices/{id}`: hostname, description, tags."""
        with self.lock:
            dev = self._device(device_id)
            hostname: Any = body.get("hostname", dev.hostname)
            _require(valid_hostname(hostname), "hostname must be a valid host name")
            description: Any = body.get("description", dev.description)
            _require(
                description is None or isinstance(description, str), "description must be a string"
            )
            tags = _tags(body) if "tags" in body else dev.tags
            dev.hostname, dev.description, dev.tags = hostname, description, tags
            return self.device_json(dev)

    def get_device(self, device_id: str) -> JsonObject:
        with self.lock:
            return self.device_json(self._device(device_id))

    def create_device(self, project_id: str, body: JsonObject) -> JsonObject:
        self._project(project_id)
        hostname: Any = body.get("hostname")
        _require(valid_hostname(hostname), "hostname is required and must be a valid host name")
        plan: Any = body.get("plan")
        _require(any(p["slug"] == plan for p in PLANS), f"plan {plan!r} is not a valid plan")
        os_slug: Any = body.get("operating_system")
        _require(
            any(o["slug"] == os_slug for o in OPERATING_SYSTEMS),
            f"operating_system {os_slug!r} is not a valid operating system",
        )
        img = image.image(OS_IMAGES[os_slug])
        _require(
            img.ready(),
            f"operating_system {os_slug!r}: the lab image is not built yet "
            f"(run `ecmptui lab image --os {img.os}`)",
        )
        metro: Any = body.get("metro")
        facility: Any = body.get("facility")
        _require(metro or facility, "metro or facility is required")
        _require(
            metro in (None, "", "lab") and facility in (None, "", "lab"),
            f"metro {metro or facility!r} is not a valid metro",
        )
        tags = _tags(body)
        keys: Any = body.get("project_ssh_keys") or []
        _require(
            isinstance(keys, list) and all(isinstance(k, str) and k in self.ssh_keys for k in keys),
            "project_ssh_keys must list ids of this project's keys",
        )
        with self.lock:
            used = {d.n for d in self.devices.values()}
            free = [n for n in range(1, MAX_NODES + 1) if n not in used]
            _require(bool(free), f"the lab holds at most {MAX_NODES} devices")
            dev = Device(
                id=str(uuid.uuid4()),
                n=free[0],
                hostname=hostname,
                plan=plan,
                os=os_slug,
                tags=tags,
                ssh_keys=keys or list(self.ssh_keys),
                created_at=_now(),
            )
            self.devices[dev.id] = dev
            authorized = [self.ssh_keys[k]["key"] for k in dev.ssh_keys]
            data = self.device_json(dev)
        threading.Thread(
            target=self._provision, args=(dev, authorized), daemon=True, name=f"provision-{dev.n}"
        ).start()
        return data

    def _machine(self, dev: Device) -> Machine:
        return Machine(
            self.lab.server_machine(dev.n),
            self.lab.server_ns(dev.n),
            self.lab.server_dir(dev.n),
            image.image(OS_IMAGES[dev.os]).rootfs,
        )

    def _provision(self, dev: Device, authorized: list[str]) -> None:
        try:
            with self.lock:
                dev.state = "provisioning"
            fabric.add_server(self.lab, dev.n, self.slot)
            machine = self._machine(dev)
            host_key = firstboot.prepare(machine, dev.hostname, authorized)
            machine.put("/etc/apt/apt.conf.d/01ecmptui-lab-proxy", aptproxy.apt_conf(self.slot))
            if OS_IMAGES[dev.os] == "plain":  # provisioning will need packages
                self.apt_proxy.ensure()
            with self.lock:
                if dev.id not in self.devices:  # deleted while provisioning
                    return
                dev.machine = machine
                dev.host_key = host_key
                self._write_known_hosts()
            self._boot(dev)
        except Exception as exc:
            log.error("device %s failed: %s", dev.hostname, exc)
            with self.lock:
                self._failed(dev, str(exc))

    def _boot(self, dev: Device) -> None:
        """Boot the device's machine; `active` once its sshd accepts, like Metal's."""
        assert dev.machine is not None
        if dev.hostname in self._boot_faults():
            raise EcmpError(
                f"its machine did not come up (boot failure injected through "
                f"{self.lab.boot_faults_file})"
            )
        dev.machine.boot()
        firstboot.wait_port(mgmt_addr(self.slot, dev.n), 22, BOOT_TIMEOUT)
        with self.lock:
            if dev.id in self.devices:
                dev.state, dev.failure = "active", None
                self.save()
        log.info("device %s (%s) active", dev.hostname, dev.machine.name)

    def device_action(self, device_id: str, body: JsonObject) -> None:
        """`POST /devices/{id}/actions`: reboot (power cycle on the same disk), power_off,
        power_on. Runs in the background like Metal's; the device's state tells progress."""
        kind: Any = body.get("type")
        _require(kind in DEVICE_ACTIONS, f"type must be one of {', '.join(DEVICE_ACTIONS)}")
        with self.lock:
            dev = self._device(device_id)
            # a failed device's machine may be rebooted (as Metal let one power-cycle it)
            _require(
                dev.machine is not None and dev.state in ("active", "inactive", "failed"),
                f"device is {dev.state}; try again when it is active",
            )
            if kind == "power_on" and dev.state == "active":
                return
            dev.state = {
                "reboot": "rebooting",
                "power_off": "powering_off",
                "power_on": "powering_on",
            }[kind]
        threading.Thread(
            target=self._power, args=(dev, kind), daemon=True, name=f"{kind}-{dev.n}"
        ).start()

    def _power(self, dev: Device, kind: str) -> None:
        assert dev.machine is not None
        try:
            if kind in ("reboot", "power_off"):
                dev.machine.stop()
            if kind == "power_off":
                with self.lock:
                    dev.state = "inactive"
                    self.save()
                return
            self._boot(dev)
        except Exception as exc:
            log.error("device %s %s failed: %s", dev.hostname, kind, exc)
            with self.lock:
                self._failed(dev, f"{kind}: {exc}")

    def _boot_faults(self) -> set[str]:
        """Lab only, to rehearse a server that never comes up: host names listed (one a
        line) in the lab's boot-faults file fail every boot while they are listed."""
        try:
            return set(self.lab.boot_faults_file.read_text().split())
        except OSError:
            return set()

    def _write_known_hosts(self) -> None:
        lines = [
            f"{mgmt_addr(self.slot, d.n)} {d.host_key}\n"
            for d in sorted(self.devices.values(), key=lambda d: d.n)
            if d.host_key
        ]
        tmp = self.lab.known_hosts.with_suffix(".new")
        tmp.write_text("".join(lines))
        tmp.replace(self.lab.known_hosts)

    def delete_device(self, device_id: str) -> None:
        with self.lock:
            dev = self._device(device_id)
            del self.devices[device_id]
            for sid in [s for s, v in self.sessions.items() if v["device_id"] == device_id]:
                del self.sessions[sid]
            self._write_known_hosts()
            self._sync_router()
        (dev.machine or self._machine(dev)).remove()
        fabric.remove_server(self.lab, dev.n)
        shutil.rmtree(self.lab.server_dir(dev.n), ignore_errors=True)

    def shutdown(self) -> None:
        """Stop every machine of the lab (devices, router, package proxy)."""
        with self.lock:
            machines = [d.machine for d in self.devices.values() if d.machine is not None]
        for m in [*machines, self.apt_proxy.machine, *self.router.machines]:
            try:
                m.stop()
            except Exception as exc:
                log.error("stopping machine %s: %s", m.name, exc)

    def device_ips(self, device_id: str) -> JsonObject:
        return {"ip_addresses": self.get_device(device_id)["ip_addresses"]}

    # -- elastic IPs ---------------------------------------------------------------------
    def reserve_ip(self, project_id: str, body: JsonObject) -> JsonObject:
        self._project(project_id)
        kinds = {f.reservation_type: f for f in Family}
        _require(
            body.get("type") in kinds,
            f"type {body.get('type')!r} is not supported (the lab reserves public_ipv4 "
            "and public_ipv6)",
        )
        family = kinds[str(body["type"])]
        quantity: Any = body.get("quantity")
        _require(
            isinstance(quantity, int) and not isinstance(quantity, bool) and quantity >= 1,
            "quantity must be a positive integer",
        )
        _require(
            quantity == 1,
            f"the lab reserves single addresses (quantity 1, a /{family.host_bits})",
        )
        metro: Any = body.get("metro") or body.get("facility")
        _require(metro in (None, "", "lab"), f"metro {metro!r} is not a valid metro")
        tags = _tags(body)
        with self.lock:
            used = {ip["address"] for ip in self.ips.values()}
            free = _free_address(family, used)
            _require(
                free is not None, f"no {family.reservation_type} addresses left in the lab pool"
            )
            assert free is not None
            iid = str(uuid.uuid4())
            self.ips[iid] = {
                "id": iid,
                "address_family": family.value,
                "netmask": str(ipaddress.ip_network(host_prefix(free)).netmask),
                "cidr": family.host_bits,
                "public": True,
                "management": False,
                "manageable": True,
                "enabled": True,
                "global_ip": False,
                "address": free,
                "network": free,
                "gateway": free,
                "type": family.reservation_type,
                "tags": tags,
                "details": body.get("details"),
                "customdata": {},
                "created_at": _now(),
                "metro": METRO,
                "project": {"href": self.project["href"]},
                "assignments": [],
                "href": f"/ips/{iid}",
            }
            self._sync_router()
            return self.ips[iid]

    def list_ips(self, project_id: str, query: JsonObject | None = None) -> JsonObject:
        """The project's reservations (its IPv6 block first); `type` filters them
        (comma-separated), as Metal's."""
        self._project(project_id)
        wanted: Any = (query or {}).get("type")
        ips = [self.block6_json(), *self.ips.values()]
        if wanted:
            _require(isinstance(wanted, str), "type must be a string")
            kinds = {t.strip() for t in wanted.split(",")}
            ips = [ip for ip in ips if ip["type"] in kinds]
        return {"ip_addresses": ips}

    def get_ip(self, ip_id: str) -> JsonObject:
        """A reservation, or one of a device's assignments."""
        if ip_id in self.ips:
            return self.ips[ip_id]
        if ip_id == self.block6_id:
            return self.block6_json()
        with self.lock:
            for dev in self.devices.values():
                for a in self._assignments(dev):
                    if a["id"] == ip_id:
                        return a
        raise ApiError(404, "Not found")

    def delete_ip(self, ip_id: str) -> None:
        with self.lock:
            if self.ips.pop(ip_id, None) is None:
                raise ApiError(404, "Not found")
            self._sync_router()

    # -- BGP -----------------------------------------------------------------------------
    def enable_bgp(self, project_id: str, body: JsonObject) -> None:
        self._project(project_id)
        _require(
            body.get("deployment_type") in ("local", "global"),
            "deployment_type must be local or global",
        )
        _require(body.get("deployment_type") == "local", "the lab offers local BGP only")
        asn: Any = body.get("asn")
        _require(
            isinstance(asn, int)
            and not isinstance(asn, bool)
            and (64512 <= asn <= 65534 or 4200000000 <= asn <= 4294967294),
            "asn must be a private ASN (64512-65534)",
        )
        md5: Any = body.get("md5")
        _require(
            md5 is None
            or (isinstance(md5, str) and 0 < len(md5) <= 20 and md5.isascii() and md5.isalnum()),
            "md5 must be 1-20 letters or digits",
        )
        with self.lock:
            if self.bgp_config is not None:
                raise ApiError(422, "BGP is already enabled for this project")
            bid = str(uuid.uuid4())
            self.bgp_config = {
                "id": bid,
                "status": "enabled",
                "deployment_type": "local",
                "asn": asn,
                "md5": md5,
                "route_object": None,
                "max_prefix": 10,
                "created_at": _now(),
                "requested_at": _now(),
                "project": {"href": self.project["href"]},
                "sessions": [],
                "ranges": [],
                "href": f"/bgp-configs/{bid}",
            }

    def get_bgp_config(self, project_id: str) -> JsonObject:
        self._project(project_id)
        with self.lock:
            if self.bgp_config is None:
                return {}
            cfg = dict(self.bgp_config)
            if cfg.get("md5") is None:
                del cfg["md5"]  # the spec has no null here: absent when not configured
            sessions = list(self.sessions.values())
        protocols = self.router.protocols() if sessions else {}
        cfg["sessions"] = [self._session_json(s, protocols) for s in sessions]
        return cfg

    def get_bgp_config_by_id(self, config_id: str) -> JsonObject:
        with self.lock:
            if self.bgp_config is None or self.bgp_config["id"] != config_id:
                raise ApiError(404, "Not found")
        return self.get_bgp_config(self.project["id"])

    def project_sessions(self, project_id: str) -> JsonObject:
        """`GET /projects/{id}/bgp/sessions`: every session of the project."""
        self._project(project_id)
        with self.lock:
            sessions = list(self.sessions.values())
        protocols = self.router.protocols() if sessions else {}
        return {"bgp_sessions": [self._session_json(s, protocols) for s in sessions]}

    def get_metro(self, metro_id: str) -> JsonObject:
        if metro_id not in (METRO["id"], METRO["code"]):
            raise ApiError(404, "Not found")
        return METRO

    def _session_json(self, sess: JsonObject, protocols: JsonObject) -> JsonObject:
        """A session as Metal showed it: `status` one word per router ("up,down")."""
        dev = self.devices.get(sess["device_id"])
        name = session_protocol(dev.n, Family.parse(sess["address_family"])) if dev else ""
        states = []
        for router in ROUTERS:
            proto = protocols.get(router, {}).get(name) if dev else None
            states.append("up" if proto is not None and proto.established else "down")
        routes = self.router.learned_routes(name) if "up" in states and dev else []
        return {**sess, "status": ",".join(states), "learned_routes": routes}

    def create_session(self, device_id: str, body: JsonObject) -> JsonObject:
        with self.lock:
            self._device(device_id)
            family: Any = body.get("address_family")
            _require(family in ("ipv4", "ipv6"), "address_family must be ipv4 or ipv6")
            _require(self.bgp_config is not None, "BGP is not enabled for this project")
            _require(
                not any(
                    s["device_id"] == device_id and s["address_family"] == family
                    for s in self.sessions.values()
                ),
                f"a BGP session for {family} already exists on this device",
            )
            sid = str(uuid.uuid4())
            self.sessions[sid] = {
                "id": sid,
                "device_id": device_id,
                "address_family": family,
                "default_route": False,
                "switch_name": "core1,core2",
                "created_at": _now(),
                "updated_at": _now(),
                "device": {"href": f"/devices/{device_id}"},
                "href": f"/bgp/sessions/{sid}",
            }
            self._sync_router()
            return self._session_json(self.sessions[sid], {})

    def list_sessions(self, device_id: str) -> JsonObject:
        with self.lock:
            self._device(device_id)
            mine = [s for s in self.sessions.values() if s["device_id"] == device_id]
        protocols = self.router.protocols() if mine else {}
        return {"bgp_sessions": [self._session_json(s, protocols) for s in mine]}

    def get_session(self, session_id: str) -> JsonObject:
        with self.lock:
            sess = self.sessions.get(session_id)
            if sess is None:
                raise ApiError(404, "Not found")
        return self._session_json(sess, self.router.protocols())

    def delete_session(self, session_id: str) -> None:
        with self.lock:
            if self.sessions.pop(session_id, None) is None:
                raise ApiError(404, "Not found")
            self._sync_router()

    def neighbors(self, device_id: str) -> JsonObject:
        with self.lock:
            dev = self._device(device_id)
            if self.bgp_config is None:
                return {"bgp_neighbors": []}
            families = sorted(
                Family.parse(s["address_family"])
                for s in self.sessions.values()
                if s["device_id"] == device_id
            )
            return {"bgp_neighbors": [self._neighbor(dev, f) for f in families]}

    def _neighbor(self, dev: Device, family: Family) -> JsonObject:
        """Metal's neighbor record of one family (call with the lock held)."""
        assert self.bgp_config is not None
        md5 = self.bgp_config["md5"]
        if family is Family.IPV4:
            customer_ip = server_link_addr(dev.n)
            peer_ips = [ROUTER_PEER_IPS[r] for r in ROUTERS]
            routes_in = [
                {"route": f"{ip['address']}/32", "exact": True}
                for ip in self.ips.values()
                if ip["address_family"] == 4
            ]
        else:
            customer_ip = server_link_addr6(dev.n)
            # the real API wrote its IPv6 peers out in full
            peer_ips = [ipaddress.IPv6Address(ROUTER_PEER_IPS6[r]).exploded for r in ROUTERS]
            routes_in = [{"route": str(PROJECT_BLOCK6), "exact": False}]
        return {
            "address_family": family.value,
            "customer_as": self.bgp_config["asn"],
            "customer_ip": customer_ip,
            "md5_enabled": md5 is not None,
            "multihop": True,
            "peer_as": ROUTER_ASN,
            "peer_ips": peer_ips,
            "routes_in": routes_in,
            "routes_out": [],
            # the spec has no null here: the password only when MD5 is on
            **({"md5_password": md5} if md5 is not None else {}),
        }

    def _sync_router(self) -> None:
        """Regenerate the core router's config from sessions and EIPs (call with the lock)."""
        asn = self.bgp_config["asn"] if self.bgp_config else 0
        md5 = self.bgp_config["md5"] if self.bgp_config else None
        peers = [
            RouterPeer(self.devices[s["device_id"]].n, asn, md5, Family.parse(s["address_family"]))
            for s in self.sessions.values()
            if s["device_id"] in self.devices
        ]
        self.router.reconfigure(
            peers, [ip["address"] for ip in self.ips.values() if ip["address_family"] == 4]
        )

    # -- status --------------------------------------------------------------------------
    def summary(self) -> JsonObject:
        """What `lab status` shows: devices with their sessions, EIPs."""
        protocols = self.router.protocols()
        with self.lock:
            devices = []
            for d in sorted(self.devices.values(), key=lambda d: d.n):
                sess = [
                    self._session_json(s, protocols)
                    for s in self.sessions.values()
                    if s["device_id"] == d.id
                ]
                devices.append(
                    {
                        "id": d.id,
                        "hostname": d.hostname,
                        "state": d.state,
                        "namespace": self.lab.server_ns(d.n),
                        "os": d.os,
                        "machine": d.machine.name if d.machine else None,
                        "pid": d.machine.pid() if d.machine else None,
                        "mgmt_address": mgmt_addr(self.slot, d.n),
                        "sessions": [
                            {
                                "id": s["id"],
                                "status": s["status"],
                                "learned_routes": s["learned_routes"],
                            }
                            for s in sess
                        ],
                    }
                )
            eips = [ip["address"] for ip in self.ips.values()]
        routers = {
            r: {
                "bgp_address": ROUTER_PEER_IPS[r],
                "bird": c.state(),
                "learned": {eip: learned_from(self.lab, r, eip) for eip in eips},
            }
            for r, c in self.router.cores.items()
        }
        return {
            "devices": devices,
            "eips": eips,
            "bgp": {"enabled": self.bgp_config is not None},
            "routers": routers,
            "router": {eip: self.router.nexthops(host_prefix(eip)) for eip in eips},
        }
