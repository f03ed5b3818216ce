"""Typed settings: a TOML file, then the environment, then command-line flags.

Every invalid value is reported as `<file>: <key>: <reason>` in one EcmpError.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ecmptui.errors import EcmpError
from ecmptui.family import FAMILY_CHOICES
from ecmptui.jsonish import JsonObject
from ecmptui.limits import DEFAULT_LAB, MAX_NODES, validate_lab_name
from ecmptui.node.daemon_names import DAEMON_NAMES, parse_daemons

METAL_ENDPOINT = "api.equinix.com/metal/v1"
TARGETS = ("lab", "metal", "static")
TOKEN_ENV = ("METAL_AUTH_TOKEN", "PACKET_AUTH_TOKEN")


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "ecmptui"


def default_config_path() -> Path:
    return config_dir() / "config.toml"


@dataclass(frozen=True)
class MetalSettings:
    endpoint: str = METAL_ENDPOINT
    project_id: str = ""
    ca_file: str = ""  # extra CA bundle for a private Metal-compatible endpoint
    timeout: float = 10.0  # seconds for one API request (the lab's API too)
    probe_netns: str = ""  # probe the EIP from this network namespace (default: here)


@dataclass(frozen=True)
class ProvisionSettings:
    nodes: int = 2
    metro: str = "lab"
    plan: str = "t1.small"
    operating_system: str = "debian_12"
    hostname_prefix: str = "ecmp-node"
    asn: int = 65000
    md5: str = ""  # secret: never printed
    bfd: bool = False
    tag: str = "ecmptui"
    eip: str = ""  # use this already reserved EIP instead of reserving one
    family: str = ""  # ipv4, ipv6 or dual; empty: the target's default (the lab: dual)
    # bird, frr, or a comma list taken in turn (bird,frr); empty: each node keeps the
    # daemon it runs, a new node gets BIRD
    daemon: str = ""


@dataclass(frozen=True)
class HealthSettings:
    """The node-side health check (see ecmptui/healthcheck.py)."""

    enabled: bool = True
    interval_ms: int = 100
    timeout_ms: int = 200
    rise: int = 3
    fall: int = 3
    withdraw_on_exit: bool = True

    def node_config(self) -> JsonObject:
        return {
            "interval_ms": self.interval_ms,
            "timeout_ms": self.timeout_ms,
            "rise": self.rise,
            "fall": self.fall,
            "withdraw_on_exit": self.withdraw_on_exit,
        }


@dataclass(frozen=True)
class SshSettings:
    user: str = "root"
    key: str = ""  # default: <config dir>/id_ed25519 (created on first use)
    known_hosts: str = ""  # default: <config dir>/known_hosts (first key seen is pinned)
    connect_timeout: float = 10.0
    host_key_policy: str = "pin"  # pin: first key seen is recorded; strict: file only


@dataclass(frozen=True)
class StaticNode:
    """One server of a deployment ecmptui did not provision (target `static`)."""

    name: str
    host: str
    port: int = 22
    user: str = "root"
    key: str = ""  # default: ssh.key
    bird_socket: str = "/run/bird/bird.ctl"
    bird_conf: str = "/etc/bird/bird.conf"
    eip_protocol: str = "eip"  # the BIRD protocol whose routes are the EIP
    state_dir: str = "/var/lib/ecmptui"
    bird_unit: str = "bird"
    nginx_unit: str = "nginx"
    frr_conf: str = "/etc/frr/frr.conf"
    frr_unit: str = "frr"
    daemon: str = ""  # bird or frr; empty: detected over SSH


@dataclass(frozen=True)
class StaticSettings:
    eips: tuple[str, ...] = ()
    probe_url: str = ""  # default: http://<first EIP>/
    probe_netns: str = ""  # run the prober in this network namespace
    nodes: tuple[StaticNode, ...] = ()


@dataclass(frozen=True)
class Settings:
    target: str = "lab"
    lab: str = DEFAULT_LAB
    metal: MetalSettings = field(default_factory=MetalSettings)
    provision: ProvisionSettings = field(default_factory=ProvisionSettings)
    ssh: SshSettings = field(default_factory=SshSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    static: StaticSettings = field(default_factory=StaticSettings)
    read_only: bool | None = None  # dashboard; None: read-only on `static` only
    token: str = field(default="", repr=False)  # from the environment only
    source: str = "<defaults>"

    @property
    def ssh_key_path(self) -> Path:
        return Path(self.ssh.key).expanduser() if self.ssh.key else config_dir() / "id_ed25519"

    @property
    def known_hosts_path(self) -> Path:
        return (
            Path(self.ssh.known_hosts).expanduser()
            if self.ssh.known_hosts
            else config_dir() / "known_hosts"
        )


SECTIONS = {
    "metal": MetalSettings,
    "provision": ProvisionSettings,
    "ssh": SshSettings,
    "health": HealthSettings,
}
TOP_KEYS = {"target", "lab"}
NODE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
HOST_RE = re.compile(r"^[A-Za-z0-9.:-]{1,253}$")
HOSTNAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?$")


def _check_type(src: str, key: str, value: Any, expected: type) -> Any:
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise EcmpError(f"{src}: {key}: expected {expected.__name__}, got {value!r}")
    return value


def _section(src: str, name: str, cls: type, data: Any) -> Any:
    if not isinstance(data, dict):
        raise EcmpError(f"{src}: {name}: expected a table")
    known = {f.name: f for f in fields(cls)}
    values = {}
    for key, value in data.items():
        if key not in known:
            raise EcmpError(f"{src}: {name}.{key}: unknown key (known: {', '.join(known)})")
        default = known[key].default
        expected = str if default is MISSING else type(default)
        values[key] = _check_type(src, f"{name}.{key}", value, expected)
    missing = [
        k
        for k, f in known.items()
        if f.default is MISSING and f.default_factory is MISSING and k not in values
    ]
    if missing:
        raise EcmpError(f"{src}: {name}.{missing[0]}: required")
    return cls(**values)


NETNS_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
REMOTE_PATH_RE = re.compile(r"/[A-Za-z0-9_./@+-]{1,255}")  # no spaces, quotes or ..
BIRD_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")  # a BIRD protocol name
UNIT_RE = re.compile(r"[A-Za-z0-9_.@-]{1,128}")


def _check_node_fields(src: str, where: str, node: StaticNode) -> None:
    """A node's paths, protocol and units, before any of them reaches a remote command."""
    for key in ("bird_socket", "bird_conf", "frr_conf", "state_dir"):
        value = getattr(node, key)
        if not REMOTE_PATH_RE.fullmatch(value) or ".." in value.split("/"):
            raise EcmpError(f"{src}: {where}.{key}: {value!r} is not an absolute path")
    if not BIRD_NAME_RE.fullmatch(node.eip_protocol):
        raise EcmpError(
            f"{src}: {where}.eip_protocol: {node.eip_protocol!r} is not a BIRD protocol name"
        )
    for key in ("bird_unit", "frr_unit", "nginx_unit"):
        if not UNIT_RE.fullmatch(getattr(node, key)):
            raise EcmpError(f"{src}: {where}.{key}: {getattr(node, key)!r} is not a unit name")
    if node.daemon not in ("", *DAEMON_NAMES):
        raise EcmpError(
            f"{src}: {where}.daemon: must be one of {', '.join(DAEMON_NAMES)} "
            f"(or absent: detected), got {node.daemon!r}"
        )


def _static(src: str, data: Any) -> StaticSettings:
    if not isinstance(data, dict):
        raise EcmpError(f"{src}: static: expected a table")
    known = {"eips", "probe_url", "probe_netns", "nodes"}
    for key in data:
        if key not in known:
            raise EcmpError(f"{src}: static.{key}: unknown key (known: {', '.join(sorted(known))})")
    eips = data.get("eips", [])
    if not isinstance(eips, list) or not all(isinstance(e, str) for e in eips):
        raise EcmpError(f"{src}: static.eips: expected a list of IP addresses")
    for e in eips:
        try:
            ipaddress.ip_address(e)
        except ValueError as exc:
            raise EcmpError(f"{src}: static.eips: {e!r} is not an IP address") from exc
    eips = [str(ipaddress.ip_address(e)) for e in eips]  # the first of each family is used
    nodes_raw = data.get("nodes", [])
    if not isinstance(nodes_raw, list):
        raise EcmpError(f"{src}: static.nodes: expected [[static.nodes]] tables")
    nodes = []
    for i, raw in enumerate(nodes_raw):
        node = _section(src, f"static.nodes[{i}]", StaticNode, raw)
        if not NODE_NAME_RE.fullmatch(node.name):
            raise EcmpError(f"{src}: static.nodes[{i}].name: {node.name!r} is not a valid name")
        if not HOST_RE.fullmatch(node.host):
            raise EcmpError(f"{src}: static.nodes[{i}].host: {node.host!r} is not a host")
        if not 1 <= node.port <= 65535:
            raise EcmpError(f"{src}: static.nodes[{i}].port: must be 1-65535")
        _check_node_fields(src, f"static.nodes[{i}]", node)
        nodes.append(node)
    names = [n.name for n in nodes]
    if len(set(names)) != len(names):
        raise EcmpError(f"{src}: static.nodes: node names must be unique")
    url = data.get("probe_url", "")
    if not isinstance(url, str) or (url and not url.startswith(("http://", "https://"))):
        raise EcmpError(f"{src}: static.probe_url: must be an http(s) URL")
    netns = data.get("probe_netns", "")
    if not isinstance(netns, str) or (netns and not NETNS_RE.fullmatch(netns)):
        raise EcmpError(f"{src}: static.probe_netns: not a namespace name")
    return StaticSettings(tuple(eips), url, netns, tuple(nodes))


def validate(s: Settings) -> Settings:
    """Check value ranges; returns `s` or raises EcmpError naming the source and key."""
    src, p = s.source, s.provision
    if s.target not in TARGETS:
        raise EcmpError(f"{src}: target: must be one of {', '.join(TARGETS)}, got {s.target!r}")
    try:
        validate_lab_name(s.lab)
    except EcmpError as exc:
        raise EcmpError(f"{src}: lab: {exc}") from exc
    if not 1 <= p.nodes <= MAX_NODES:
        raise EcmpError(f"{src}: provision.nodes: must be 1-{MAX_NODES}, got {p.nodes}")
    if not (1 <= p.asn <= 4294967294) or p.asn in (23456, 65535):
        raise EcmpError(f"{src}: provision.asn: {p.asn} is not a usable AS number")
    if p.md5 and not (len(p.md5) <= 20 and p.md5.isascii() and p.md5.isalnum()):
        raise EcmpError(f"{src}: provision.md5: must be 1-20 letters or digits")
    if not HOSTNAME_RE.fullmatch(p.hostname_prefix):
        raise EcmpError(
            f"{src}: provision.hostname_prefix: {p.hostname_prefix!r} is not a "
            "valid host name prefix (lowercase letters, digits, '-')"
        )
    if not p.tag or not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", p.tag):
        raise EcmpError(f"{src}: provision.tag: {p.tag!r} must be 1-64 of A-Z a-z 0-9 _ . : -")
    if p.eip:
        try:
            ipaddress.IPv4Address(p.eip)
        except ValueError as exc:
            raise EcmpError(f"{src}: provision.eip: {p.eip!r} is not an IPv4 address") from exc
    if p.daemon:
        try:
            parse_daemons(p.daemon)
        except EcmpError as exc:
            raise EcmpError(f"{src}: provision.daemon: {exc}") from exc
    if p.family and p.family not in FAMILY_CHOICES:
        raise EcmpError(
            f"{src}: provision.family: must be one of {', '.join(FAMILY_CHOICES)}, got {p.family!r}"
        )
    h = s.health
    if not 10 <= h.interval_ms <= 60000:
        raise EcmpError(f"{src}: health.interval_ms: must be 10-60000, got {h.interval_ms}")
    if not 10 <= h.timeout_ms <= 60000:
        raise EcmpError(f"{src}: health.timeout_ms: must be 10-60000, got {h.timeout_ms}")
    for key in ("rise", "fall"):
        if not 1 <= getattr(h, key) <= 100:
            raise EcmpError(f"{src}: health.{key}: must be 1-100, got {getattr(h, key)}")
    if s.ssh.host_key_policy not in ("pin", "strict"):
        raise EcmpError(f"{src}: ssh.host_key_policy: must be pin or strict")
    # `not (0 < x <= top)` also refuses NaN, which every comparison fails
    if not 0 < s.ssh.connect_timeout <= 120:
        raise EcmpError(f"{src}: ssh.connect_timeout: must be between 0 and 120 seconds")
    if s.metal.probe_netns and not NETNS_RE.fullmatch(s.metal.probe_netns):
        raise EcmpError(f"{src}: metal.probe_netns: not a namespace name")
    if not 0 < s.metal.timeout <= 300:
        raise EcmpError(f"{src}: metal.timeout: must be between 0 and 300 seconds")
    TARGET_SECTIONS[s.target](s, src)
    return s


def _check_lab_section(s: Settings, src: str) -> None:
    """Nothing beyond `lab` (validated above): the lab is found by its name."""


def _check_metal_section(s: Settings, src: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9.-]+(:\d+)?(/[\w./-]*)?", s.metal.endpoint):
        raise EcmpError(
            f"{src}: metal.endpoint: {s.metal.endpoint!r} must look like "
            "host[:port][/path] (no scheme)"
        )


def _check_static_section(s: Settings, src: str) -> None:
    if not s.static.nodes:
        raise EcmpError(
            f"{src}: static.nodes: target static needs at least one [[static.nodes]] entry"
        )
    if not s.static.eips:
        raise EcmpError(f"{src}: static.eips: target static needs the EIP(s) the nodes announce")


# what each target needs of the settings (the target's own section)
TARGET_SECTIONS: dict[str, Callable[[Settings, str], None]] = {
    "lab": _check_lab_section,
    "metal": _check_metal_section,
    "static": _check_static_section,
}


MAX_CONFIG_BYTES = 1 << 20  # a settings file is small: more is not one


def _read_config(path: Path) -> str:
    """The file's text: a regular file of at most MAX_CONFIG_BYTES (a FIFO or a device
    would hang or never end)."""
    import stat

    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(path)
    if not stat.S_ISREG(mode):
        raise EcmpError(
            f"{path}: not a regular file (a FIFO, device or socket cannot be a config file)"
        )
    with path.open("rb") as fh:
        raw = fh.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise EcmpError(f"{path}: larger than {MAX_CONFIG_BYTES // 1024} KiB: not a config file")
    return raw.decode("utf-8")


def load(
    path: str | Path | None = None, env: Mapping[str, str] | None = None, **flags: Any
) -> Settings:
    """Read the TOML file (default: user's config dir, optional), env, then flags."""
    environ: Mapping[str, str] = os.environ if env is None else env
    explicit = path is not None
    cfg_path = Path(path).expanduser() if path is not None else default_config_path()
    data: dict[str, Any] = {}
    src = str(cfg_path)
    if cfg_path.exists():
        try:
            data = tomllib.loads(_read_config(cfg_path))
        except tomllib.TOMLDecodeError as exc:
            raise EcmpError(f"{src}: not valid TOML: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise EcmpError(f"{src}: not a text file (not UTF-8 at byte {exc.start})") from exc
        except IsADirectoryError as exc:
            raise EcmpError(f"{src}: is a directory, not a config file") from exc
        except OSError as exc:
            raise EcmpError(f"{src}: cannot read: {exc.strerror}") from exc
    elif explicit:
        raise EcmpError(f"{src}: config file not found")
    else:
        src = "<defaults>"
    top: dict[str, Any] = {"source": src}
    for key, value in data.items():
        if key in SECTIONS:
            top[key] = _section(src, key, SECTIONS[key], value)
        elif key == "static":
            top[key] = _static(src, value)
        elif key == "read_only":
            top[key] = _check_type(src, key, value, bool)
        elif key in TOP_KEYS:
            top[key] = _check_type(src, key, value, str)
        else:
            raise EcmpError(
                f"{src}: {key}: unknown key (known: target, lab, read_only, "
                f"static, {', '.join(SECTIONS)})"
            )
    settings = Settings(**top)
    token = next((environ[k] for k in TOKEN_ENV if environ.get(k)), "")
    if environ.get("ECMPTUI_TARGET"):
        settings = replace(settings, target=environ["ECMPTUI_TARGET"], source=src)
    if environ.get("ECMPTUI_LAB"):  # file, then environment, then flags
        settings = replace(settings, lab=environ["ECMPTUI_LAB"])
    settings = validate(replace(settings, token=token))
    prov = {
        k: v
        for k, v in flags.items()
        if v is not None and k in {f.name for f in fields(ProvisionSettings)}
    }
    top_flags = {k: v for k, v in flags.items() if v is not None and k in TOP_KEYS}
    health = flags.get("health")
    if not prov and not top_flags and health is None:
        return settings
    settings = replace(settings, provision=replace(settings.provision, **prov), **top_flags)
    if health is not None:
        settings = replace(settings, health=replace(settings.health, enabled=health))
    return replace(validate(replace(settings, source="command line")), source=src)
