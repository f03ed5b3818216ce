"""What the lab puts into a new machine before its first boot, as Metal's provisioning did:
hostname, the device's own SSH host key, and the project's SSH keys for root."""

from __future__ import annotations

import os
import socket
import time

import asyncssh

from ecmptui.errors import EcmpError
from ecmptui.lab.machine import Machine
from ecmptui.waits import Deadline

HOST_KEY = "/etc/ssh/ssh_host_ed25519_key"
# A drop-in, so the image's own sshd_config stays Debian's: only the key the lab made.
SSHD_DROPIN = f"HostKey {HOST_KEY}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"


def prepare(machine: Machine, hostname: str, authorized: list[str]) -> str:
    """Write hostname, host key and authorized_keys into `machine`; return the host key line."""
    machine.put("/etc/hostname", hostname + "\n")
    machine.put("/etc/hosts", f"127.0.0.1 localhost\n127.0.1.1 {hostname}\n")
    key = asyncssh.generate_private_key("ssh-ed25519", comment=f"root@{hostname}")
    machine.put(HOST_KEY, key.export_private_key().decode(), 0o600)
    public = key.export_public_key().decode().strip()
    machine.put(HOST_KEY + ".pub", public + "\n")
    machine.put("/etc/ssh/sshd_config.d/ecmptui-lab.conf", SSHD_DROPIN)
    machine.put("/root/.ssh/authorized_keys", "".join(k.strip() + "\n" for k in authorized), 0o600)
    return " ".join(public.split()[:2])


def wait_port(host: str, port: int, timeout: float) -> None:
    """Wait (bounded: `timeout` on an idle machine, stretched by its load) until a TCP
    connect to host:port succeeds."""
    deadline = Deadline(timeout)
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError as exc:
            if deadline.expired():
                raise EcmpError(
                    f"{host}:{port} not accepting connections after "
                    f"{deadline.elapsed():.0f} s (load {os.getloadavg()[0]:.1f})"
                ) from exc
            time.sleep(0.01)
