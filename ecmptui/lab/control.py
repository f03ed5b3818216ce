"""What the CLI calls: `lab up`, `lab down`, `lab status`, and reading a running lab's info."""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ecmptui.errors import EcmpError
from ecmptui.jsonish import JsonObject
from ecmptui.lab import fabric, image, machine
from ecmptui.lab.instance import MAX_SLOTS, MAX_VANTAGES, STATE_ROOT, LabInstance, mgmt_net
from ecmptui.lab.router import Resilient
from ecmptui.waits import Deadline

DEFAULT_PORT = 7443
UP_TIMEOUT = 15.0
DOWN_TIMEOUT = 5.0

# program -> Debian package that provides it
# (BIRD, nginx and sshd run inside the lab's machines, from the lab image: not on the host)
REQUIRED_PROGRAMS = {
    "ip": "iproute2",
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "sysctl": "procps",
}


@dataclass(frozen=True)
class LabInfo:
    """A running lab as `lab up` reports it."""

    name: str
    pid: int
    endpoint: str
    project_id: str
    token_file: str
    ca_file: str
    known_hosts: str
    slot: int
    mgmt_subnet: str
    client_namespace: str
    fabric_namespace: str
    ecmp: str = "hash"

    def token(self) -> str:
        return Path(self.token_file).read_text().strip()

    def public(self) -> JsonObject:
        return {
            "endpoint": self.endpoint,
            "project_id": self.project_id,
            "token_file": self.token_file,
            "ca_file": self.ca_file,
        }


def preflight() -> None:
    """Root and every needed program, else one clear error naming the Debian package."""
    if os.geteuid() != 0:
        raise EcmpError("the lab needs root (namespaces, machines, veths): run as root")
    for prog, package in REQUIRED_PROGRAMS.items():
        found = os.access(prog, os.X_OK) if prog.startswith("/") else shutil.which(prog)
        if not found:
            raise EcmpError(f"{prog} not found: install the Debian package {package}")


def _daemon_alive(lab: LabInstance, pid: int | None) -> bool:
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"ecmptui.lab.daemon" in cmdline and lab.name.encode() in cmdline


def _daemon_pid(lab: LabInstance) -> int | None:
    try:
        return int(lab.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def read_info(lab: LabInstance) -> LabInfo | None:
    """The running lab's info, or None if it is not up (or its supervisor died)."""
    try:
        data = json.loads(lab.info_file.read_text())
        info = LabInfo(**data)
    except (OSError, ValueError, TypeError):
        return None
    return info if _daemon_alive(lab, info.pid) else None


def require_info(lab: LabInstance) -> LabInfo:
    info = read_info(lab)
    if info is None:
        try:
            lab.info_file.stat()
        except PermissionError:  # the state dir is root's: say so, not "not up"
            raise EcmpError(
                f"lab {lab.name!r} belongs to root (its state in {lab.state_dir} "
                "is readable by root only): run ecmptui as root"
            ) from None
        except OSError:
            pass
        raise EcmpError(f"lab {lab.name!r} is not up: run `ecmptui lab up`")
    return info


CLAIM = "claim.json"  # in a lab's state dir: the slot and port it took, from `lab up` on


@contextmanager
def _host_lock() -> Iterator[None]:
    """The host-wide lock under which a lab takes its mgmt slot and port (two `lab up`s of
    different labs at the same moment must not both see the same slot free)."""
    STATE_ROOT.mkdir(parents=True, exist_ok=True, mode=0o755)
    fd = os.open(STATE_ROOT / ".slots.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held only while choosing: never for long
        yield
    finally:
        os.close(fd)


def _claims() -> list[dict]:
    """What every lab on this host took (its claim from `lab up`, or its info once up)."""
    out = []
    if STATE_ROOT.is_dir():
        for d in STATE_ROOT.iterdir():
            for name in (CLAIM, "lab.json"):
                try:
                    data = json.loads((d / name).read_text())
                    out.append(
                        {
                            "slot": int(data["slot"]),
                            "port": int(
                                data.get("port")
                                or str(data.get("endpoint", ":0")).rsplit(":", 1)[1]
                            ),
                        }
                    )
                except (OSError, ValueError, KeyError, TypeError, IndexError):
                    pass
    return out


def _used_slots() -> set[int]:
    used = {c["slot"] for c in _claims()}
    out = fabric.run(["ip", "-o", "-4", "addr", "show"], check=False)
    for line in out.split("\n"):
        parts = line.split()
        if "inet" in parts:
            addr = ipaddress.ip_interface(parts[parts.index("inet") + 1])
            for slot in range(MAX_SLOTS):
                if addr.network.overlaps(mgmt_net(slot)):
                    used.add(slot)
    return used


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _check_port(port: int) -> None:
    if port != 0 and not _port_free(port):
        raise EcmpError(f"port 127.0.0.1:{port} is in use: pick another with `lab up --port`")


def leftovers(lab: LabInstance) -> list[str]:
    """Namespaces, root links and state of this instance that exist now."""
    namespaces, links = fabric.present(lab)
    found = [f"machine {Path(c).name}" for c in fabric.machine_cgroups(lab)]
    found += [f"namespace {n}" for n in namespaces] + [f"link {link}" for link in links]
    if lab.state_dir.exists():
        found.append(f"directory {lab.state_dir}")
    return found


def up(
    lab: LabInstance,
    port: int | None = None,
    progress: image.Progress | None = None,
    ecmp: str | None = None,
    resilient: Resilient | None = None,
) -> tuple[LabInfo, bool]:
    """Bring the lab up (or find it running), building the lab image first if it is
    missing. Returns (info, started_now). `port` None: DEFAULT_PORT, or a free one when
    that is taken; a port asked for that is taken is an error."""
    preflight()
    if resilient is not None:
        resilient.validate()
    info = read_info(lab)
    if info is not None:
        if ecmp is not None and info.ecmp != ecmp:
            raise EcmpError(
                f"lab {lab.name!r} is up with {info.ecmp} ECMP: `ecmptui lab down` "
                f"first to start it with {ecmp}"
            )
        return info, False
    machine.cgroup_root()  # a clear error now rather than a failed boot later
    image.ensure("server", progress)
    orphan = _orphaned(lab)
    if orphan is not None:  # its supervisor died; its machines still serve: adopt them
        return _start_daemon(lab, orphan["port"], orphan["slot"], adopt=True), True
    rest = leftovers(lab)
    if rest:
        raise EcmpError(
            f"lab {lab.name!r} is partly present ({', '.join(rest[:3])}"
            f"{', ...' if len(rest) > 3 else ''}): run `ecmptui lab down` first"
        )
    with _host_lock():  # slot and port: chosen and claimed as one step
        claimed_ports = {c["port"] for c in _claims()}
        if port is None:
            port = (
                DEFAULT_PORT
                if DEFAULT_PORT not in claimed_ports and _port_free(DEFAULT_PORT)
                else 0
            )
        if port != 0 and port in claimed_ports:
            raise EcmpError(
                f"port 127.0.0.1:{port} is taken by another lab: pick another with `lab up --port`"
            )
        _check_port(port)
        free = [s for s in range(MAX_SLOTS) if s not in _used_slots()]
        if not free:
            raise EcmpError("no free mgmt subnet for another lab (198.18.100-199.0/24 all used)")
        try:
            lab.state_dir.mkdir(mode=0o700)  # keys, token and machine layers: root only
        except FileExistsError as exc:  # another `lab up` of the same instance got here first
            raise EcmpError(f"lab {lab.name!r} is being started by another process") from exc
        (lab.state_dir / CLAIM).write_text(json.dumps({"slot": free[0], "port": port}) + "\n")
    return _start_daemon(
        lab, port, free[0], adopt=False, ecmp=ecmp or "hash", resilient=resilient or Resilient()
    ), True


def vantages(lab: LabInstance, count: int) -> list[str]:
    """Vantage sites 1..count on a lab that is up (the ones missing are added; more than
    count are left: a running exporter may probe from them). Returns their namespaces."""
    if not 0 <= count <= MAX_VANTAGES:
        raise EcmpError(f"--vantages {count}: must be 0-{MAX_VANTAGES}")
    if read_info(lab) is None:
        raise EcmpError(f"lab {lab.name!r} is not up")
    with _lab_lock(lab):
        have = set(fabric.list_namespaces())
        for k in range(1, count + 1):
            if lab.site_ns(k) not in have:
                fabric.add_site(lab, k)
    return sites(lab)


def sites(lab: LabInstance) -> list[str]:
    """The lab's vantage sites' namespaces, in order."""
    have = set(fabric.list_namespaces())
    return [lab.site_ns(k) for k in range(1, MAX_VANTAGES + 1) if lab.site_ns(k) in have]


@contextmanager
def _lab_lock(lab: LabInstance) -> Iterator[None]:
    """One process at a time changes this lab's sites."""
    with open(lab.state_dir / "sites.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _orphaned(lab: LabInstance) -> JsonObject | None:
    """The port and slot of a lab whose supervisor died while its machines run on (its
    state and info files, fabric and routers all still there), else None."""
    try:
        info = json.loads(lab.info_file.read_text())
        port, slot = int(info["endpoint"].rsplit(":", 1)[1]), int(info["slot"])
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None
    if not lab.cloud_file.exists() or lab.fabric_ns not in fabric.list_namespaces():
        return None
    from ecmptui.lab.router import Backbone

    if not all(m.running() for m in Backbone(lab).machines):
        return None
    return {"port": port, "slot": slot}


def _start_daemon(
    lab: LabInstance,
    port: int,
    slot: int,
    adopt: bool,
    ecmp: str = "hash",
    resilient: Resilient | None = None,
) -> LabInfo:
    """Start the supervisor (fully detached: its own session, no terminal, logs to its
    file) and wait for its one line."""
    argv = [
        sys.executable,
        "-m",
        "ecmptui.lab.daemon",
        "--name",
        lab.name,
        "--port",
        str(port),
        "--slot",
        str(slot),
    ] + (["--adopt"] if adopt else [])
    if not adopt:
        r = resilient or Resilient()
        argv += [
            "--ecmp",
            ecmp,
            "--buckets",
            str(r.buckets),
            "--idle-timer",
            str(r.idle_timer),
            "--unbalanced-timer",
            str(r.unbalanced_timer),
        ]
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
        cwd="/",
    )
    lab.pid_file.write_text(f"{proc.pid}\n")
    line = _read_line(proc, UP_TIMEOUT)
    if line == "READY":
        info = read_info(lab)
        if info is not None:
            return info
        line = "ERROR the lab started but its info file is unreadable"
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=DOWN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
    reason = line.removeprefix("ERROR ").strip() or "the supervisor exited without a word"
    if adopt:  # never tear down machines that still serve because adopting them failed
        raise EcmpError(
            f"lab {lab.name!r}: could not adopt its running machines ({reason}); "
            "`ecmptui lab down` removes them"
        )
    down(lab)
    raise EcmpError(f"lab up failed: {reason}")


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    """The supervisor's one line, waiting `timeout` s on an idle machine (longer under load)."""
    assert proc.stdout is not None
    deadline = Deadline(timeout)
    buf = b""
    while b"\n" not in buf and not deadline.expired():
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
    proc.stdout.close()
    return (
        buf.decode(errors="replace").split("\n")[0]
        if buf
        else f"ERROR no answer within {deadline.elapsed():.0f} s"
    )


def down(lab: LabInstance) -> list[str]:
    """Stop the supervisor and remove everything of this instance; returns what was found."""
    if os.geteuid() != 0:
        raise EcmpError("the lab needs root to be torn down: run as root")
    found = leftovers(lab)
    pid = _daemon_pid(lab)
    if pid is not None and _daemon_alive(lab, pid):
        found.insert(0, f"supervisor pid {pid}")
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + DOWN_TIMEOUT
        while _daemon_alive(lab, pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _daemon_alive(lab, pid):
            os.kill(pid, signal.SIGKILL)
    # Whatever the supervisor left (or all of it, after a SIGKILL): sweep by name.
    fabric.teardown(lab)
    shutil.rmtree(lab.state_dir, ignore_errors=True)
    return found


def status(lab: LabInstance) -> JsonObject:
    """`lab status`: up or not, and the API's view of devices, EIPs and sessions."""
    info = read_info(lab)
    if info is None:
        rest = leftovers(lab) if os.geteuid() == 0 else []
        adoptable = bool(rest) and _orphaned(lab) is not None
        return {"name": lab.name, "up": False, "leftovers": rest, "adoptable": adoptable}
    import httpx  # only needed when a lab is up

    ctx = ssl.create_default_context(cafile=info.ca_file)
    try:
        resp = httpx.get(
            f"https://{info.endpoint}/lab/status",
            verify=ctx,
            timeout=5,
            headers={"X-Auth-Token": info.token()},
        )
        resp.raise_for_status()
        detail = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise EcmpError(f"lab {lab.name!r} API at {info.endpoint} did not answer: {exc}") from exc
    return {
        "name": lab.name,
        "up": True,
        **info.public(),
        "known_hosts": info.known_hosts,
        "mgmt_subnet": info.mgmt_subnet,
        "client_namespace": info.client_namespace,
        "ecmp": info.ecmp,
        **detail,
    }
