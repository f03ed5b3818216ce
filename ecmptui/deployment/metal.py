"""The Metal API through packet-python: typed results, retries, errors without secrets.

packet-python is synchronous; the async methods run it in a worker thread. The same class
talks to the lab (endpoint, token, CA and project read from the running lab) and to any
Metal-compatible endpoint.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import packet
import requests

from ecmptui.errors import EcmpError
from ecmptui.family import Family, canonical
from ecmptui.jsonish import JsonObject

T = TypeVar("T")
RETRY_STATUSES = {429, 500, 502, 503, 504}
log = logging.getLogger(__name__)  # never given the token: ApiEndpoint's repr leaves it out


class MetalError(EcmpError):
    """The API refused or could not be reached. `status` is the HTTP status, if any."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ApiEndpoint:
    """Where a Metal-compatible API is and how to authenticate (the token is never in repr
    or logs). `known_hosts`: the lab publishes its machines' host keys there."""

    endpoint: str
    project_id: str
    token: str = field(repr=False)
    ca_file: str = ""
    known_hosts: str = ""
    timeout: float = 10.0  # one request; a request that times out is not retried


@dataclass(frozen=True)
class DeviceInfo:
    id: str
    hostname: str
    state: str
    tags: tuple[str, ...]
    public_ipv4: str | None
    private_ipv4: str | None
    private_gateway: str | None
    public_ipv6: str | None = None
    gateway6: str | None = None

    @classmethod
    def from_packet(cls, dev: Any) -> DeviceInfo:
        def pick(public: bool, field: str, family: int = 4) -> str | None:
            for a in dev.ip_addresses or []:
                if a.get("address_family") == family and bool(a.get("public")) == public:
                    return a.get(field)
            return None

        return cls(
            dev.id,
            dev.hostname,
            dev.state,
            tuple(dev.tags or ()),
            pick(True, "address"),
            pick(False, "address"),
            pick(False, "gateway"),
            pick(True, "address", 6),
            pick(True, "gateway", 6),
        )


@dataclass(frozen=True)
class IpInfo:
    id: str
    address: str
    cidr: int
    tags: tuple[str, ...]


class _RequestsWithTimeout:
    """`requests` as packet-python uses it, with a timeout on every call."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout

    def __getattr__(self, name: str) -> Any:
        attr = getattr(requests, name)
        if name in ("get", "post", "put", "patch", "delete", "request"):

            def call(*args: Any, **kwargs: Any) -> Any:
                kwargs.setdefault("timeout", self._timeout)
                return attr(*args, **kwargs)

            return call
        return attr


class MetalClient:
    """packet.Manager for one target with retries and clear errors."""

    def __init__(self, target: ApiEndpoint, retries: int = 3) -> None:
        self.target = target
        self.retries = retries
        self.manager = packet.Manager(auth_token=target.token)
        self.manager.end_point = target.endpoint
        # packet-python calls module-level requests.* without a timeout: give it one
        packet.baseapi.requests = _RequestsWithTimeout(target.timeout)
        if target.ca_file:
            # packet-python calls module-level requests.*; requests reads the bundle from the
            # environment per request. This process talks to one target, so this is its scope.
            os.environ["REQUESTS_CA_BUNDLE"] = target.ca_file

    @property
    def project_id(self) -> str:
        return self.target.project_id

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a packet-python call; retry 429/5xx with backoff; map failures to MetalError."""
        delay = 0.2
        for attempt in range(self.retries + 1):
            try:
                log.debug("API %s (attempt %d)", getattr(fn, "__name__", fn), attempt + 1)
                return fn(*args, **kwargs)
            except packet.baseapi.ResponseError as exc:
                status = exc.response.status_code
                log.debug("API %s: HTTP %s", getattr(fn, "__name__", fn), status)
                if status in RETRY_STATUSES and attempt < self.retries:
                    time.sleep(delay)
                    delay *= 2
                    continue
                msg = str(exc).removeprefix(f"Error {status}: ")
                hint = {401: " (check the API token)", 404: " (check the project id)"}
                raise MetalError(
                    f"Metal API at {self.target.endpoint}: {status} {msg}{hint.get(status, '')}",
                    status,
                ) from exc
            except (KeyError, TypeError, ValueError) as exc:
                raise MetalError(
                    f"Metal API at {self.target.endpoint}: unexpected response "
                    f"({type(exc).__name__}: {exc})"
                ) from exc
            except requests.Timeout as exc:  # not retried: the request may have been applied
                raise MetalError(
                    f"the Metal API at {self.target.endpoint} did not answer "
                    f"within {self.target.timeout:g} s"
                ) from exc
            except (packet.baseapi.Error, requests.RequestException) as exc:
                cause = getattr(exc, "cause", None) or exc
                if isinstance(cause, requests.Timeout):
                    raise MetalError(
                        f"the Metal API at {self.target.endpoint} did not answer "
                        f"within {self.target.timeout:g} s"
                    ) from exc
                if attempt < self.retries:
                    time.sleep(delay)
                    delay *= 2
                    continue
                raise MetalError(
                    f"cannot reach the Metal API at {self.target.endpoint}: {type(cause).__name__}"
                ) from exc
            except OSError as exc:  # e.g. the CA bundle went with the lab that made it
                raise MetalError(
                    f"cannot reach the Metal API at {self.target.endpoint}: {exc.strerror or exc}"
                ) from exc
        raise AssertionError("unreachable")

    async def acall(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(self.call, fn, *args, **kwargs)

    # -- typed helpers (sync; use acall(client.x, ...) from async code) -------------------
    def check_project(self) -> None:
        self.call(self.manager.get_project, self.project_id)

    def project_keys(self) -> list[dict]:
        return self.call(self.manager.call_api, f"projects/{self.project_id}/ssh-keys")["ssh_keys"]

    def add_project_key(self, label: str, public_key: str) -> str:
        data = self.call(
            self.manager.call_api,
            f"projects/{self.project_id}/ssh-keys",
            type="POST",
            params={"label": label, "key": public_key},
        )
        return data["id"]

    def delete_key(self, key_id: str) -> None:
        self.call(self.manager.call_api, f"ssh-keys/{key_id}", type="DELETE")

    def devices(self, tag: str | None = None) -> list[DeviceInfo]:
        devs = [
            DeviceInfo.from_packet(d)
            for d in self.call(self.manager.list_all_devices, self.project_id)
        ]
        return [d for d in devs if tag is None or tag in d.tags]

    def device(self, device_id: str) -> DeviceInfo:
        return DeviceInfo.from_packet(self.call(self.manager.get_device, device_id))

    def device_failure(self, device_id: str) -> str:
        """Why a failed device failed: its last provisioning event (Metal's own words)."""
        data = self.call(self.manager.call_api, f"devices/{device_id}")
        events = [e for e in data.get("provisioning_events") or [] if isinstance(e, dict)]
        last = events[-1] if events else {}
        return str(last.get("body") or last.get("interpolated") or "the API gives no reason")

    def create_device(
        self,
        hostname: str,
        plan: str,
        metro: str,
        os_slug: str,
        tags: list[str],
        key_ids: list[str],
    ) -> DeviceInfo:
        dev = self.call(
            self.manager.create_device,
            self.project_id,
            hostname,
            plan,
            metro=metro,
            operating_system=os_slug,
            tags=tags,
            project_ssh_keys=key_ids,
        )
        return DeviceInfo.from_packet(dev)

    def delete_device(self, device_id: str) -> None:
        self.call(self.manager.call_api, f"devices/{device_id}", type="DELETE")

    def reboot_device(self, device_id: str) -> None:
        """Metal's device action `reboot` (the device goes through `rebooting` to `active`)."""
        self.call(
            self.manager.call_api,
            f"devices/{device_id}/actions",
            type="POST",
            params={"type": "reboot"},
        )

    def ips(self, tag: str | None = None, family: Family = Family.IPV4) -> list[IpInfo]:
        """The project's elastic addresses of `family` (not the blocks servers are given
        their own addresses from)."""
        ips = self.call(self.manager.list_project_ips, self.project_id)
        out = [
            IpInfo(i.id, canonical(i.address), int(i.cidr or family.host_bits), tuple(i.tags or ()))
            for i in ips
            if i.address_family == family.value and i.public and not i.management
        ]
        return [i for i in out if tag is None or tag in i.tags]

    def reserve_ip(self, metro: str, tags: list[str], family: Family = Family.IPV4) -> IpInfo:
        ip = self.call(
            self.manager.reserve_ip_address,
            self.project_id,
            family.reservation_type,
            1,
            metro=metro,
            tags=tags,
        )
        return IpInfo(
            ip.id, canonical(ip.address), int(ip.cidr or family.host_bits), tuple(ip.tags or ())
        )

    def delete_ip(self, ip_id: str) -> None:
        self.call(self.manager.delete_ip, ip_id)

    def bgp_config(self) -> JsonObject:
        return self.call(self.manager.call_api, f"projects/{self.project_id}/bgp-config") or {}

    def enable_bgp(self, asn: int, md5: str | None) -> None:
        self.call(
            self.manager.enable_project_bgp_config, self.project_id, asn, "local", md5=md5 or None
        )

    def sessions(self, device_id: str) -> list[dict]:
        data = self.call(self.manager.call_api, f"devices/{device_id}/bgp/sessions")
        return data.get("bgp_sessions", [])

    def create_session(self, device_id: str, family: Family = Family.IPV4) -> JsonObject:
        return self.call(
            self.manager.call_api,
            f"devices/{device_id}/bgp/sessions",
            type="POST",
            params={"address_family": family.api},
        )

    def neighbors(self, device_id: str) -> list[dict]:
        data = self.call(self.manager.call_api, f"devices/{device_id}/bgp/neighbors")
        return data.get("bgp_neighbors", [])


def session_status(raw: str | None) -> str:
    """Metal's status may be one word or a comma list (one per switch): 'up' only if all are."""
    parts = [p.strip() for p in (raw or "").split(",") if p.strip()]
    if not parts:
        return "unknown"
    if all(p == "up" for p in parts):
        return "up"
    return "down" if all(p == "down" for p in parts) else "partial"
