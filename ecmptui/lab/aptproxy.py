"""The lab's package proxy: apt-cacher-ng from Debian, in a lab machine of its own.

A server made from the plain image has no BIRD and no nginx, so provisioning installs them
with apt-get, as on a fresh Metal server. Lab machines have no route out of the lab, so the
lab gives them what a data center gives its servers: a package proxy on the management
network. It runs in a machine that shares the host's network (the only lab machine that
does), listens only on the mgmt bridge's address and fetches from Debian's mirror. The lab
tells every machine about it in `/etc/apt/apt.conf.d/` at creation.

It starts with the first device that needs it and goes away with the lab.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ecmptui.lab import firstboot, image
from ecmptui.lab.instance import LabInstance, mgmt_gateway
from ecmptui.lab.machine import Machine

PORT = 3142
START_TIMEOUT = 15.0


def apt_conf(slot: int) -> str:
    """What a lab machine's apt is told: use the lab's proxy (plain HTTP to Debian)."""
    return f'Acquire::http::Proxy "http://{mgmt_gateway(slot)}:{PORT}";\n'


def acng_conf(slot: int) -> str:
    return (
        f"BindAddress: {mgmt_gateway(slot)}\nPort: {PORT}\n"
        "CacheDir: /var/cache/apt-cacher-ng\nLogDir: /var/log/apt-cacher-ng\n"
        "ExThreshold: 4\nPassThroughPattern: ^$\n"
    )


class AptProxy:
    """Starts the proxy machine once (thread-safe) and reports where it listens."""

    def __init__(self, lab: LabInstance, slot: int) -> None:
        self.lab, self.slot = lab, slot
        self.machine = Machine(lab.apt_machine, None, lab.apt_dir, image.image("server").rootfs)
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{mgmt_gateway(self.slot)}:{PORT}"

    def ensure(self) -> None:
        with self._lock:
            if self.machine.running():
                return
            m = self.machine
            m.put("/etc/hostname", "apt-proxy\n")
            resolv = Path("/etc/resolv.conf")
            if resolv.exists():
                m.put("/etc/resolv.conf", resolv.read_text())
            m.put("/etc/apt-cacher-ng/zz-ecmptui-lab.conf", acng_conf(self.slot))
            m.enable("apt-cacher-ng.service")
            m.mask("ssh.service")
            m.boot()
            firstboot.wait_port(mgmt_gateway(self.slot), PORT, START_TIMEOUT)
