"""An OpenSSH server inside one lab server namespace, as Metal's OS image would run it."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from ecmptui.errors import EcmpError
from ecmptui.lab import fabric

SSHD = "/usr/sbin/sshd"  # sshd refuses to re-exec itself unless started by absolute path


def sshd_config(listen: str, host_key: Path, pid_file: Path, authorized_keys: Path) -> str:
    return "\n".join([
        "Port 22",
        f"ListenAddress {listen}",
        f"HostKey {host_key}",
        f"PidFile {pid_file}",
        f"AuthorizedKeysFile {authorized_keys}",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        # keys live under the lab's state directory, not in ~/.ssh: skip the ownership checks
        "StrictModes no",
        "X11Forwarding no",
        "AllowTcpForwarding no",
        "PrintMotd no",
        "LogLevel VERBOSE",
        "",
    ])


def generate_host_key(path: Path) -> str:
    """Create an ed25519 host key at `path`; return the public key line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fabric.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)])
    return path.with_suffix(".pub").read_text().strip()


def start(ns: str, directory: Path, listen: str, authorized: list[str]) -> str:
    """Start sshd in `ns` listening on `listen`; return its host public key line."""
    ssh_dir = directory / "ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
    host_pub = generate_host_key(ssh_dir / "ssh_host_ed25519_key")
    keys = ssh_dir / "authorized_keys"
    keys.write_text("".join(k.strip() + "\n" for k in authorized))
    keys.chmod(0o600)
    conf = ssh_dir / "sshd_config"
    conf.write_text(sshd_config(listen, ssh_dir / "ssh_host_ed25519_key",
                                directory / "sshd.pid", keys))
    fabric.run(fabric.in_ns(ns, SSHD, "-f", str(conf)))
    wait_port(listen, 22, 5.0)
    return host_pub


def wait_port(host: str, port: int, timeout: float) -> None:
    """Wait (bounded) until a TCP connect to host:port succeeds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise EcmpError(f"{host}:{port} not accepting connections after {timeout:.0f} s")
            time.sleep(0.01)
