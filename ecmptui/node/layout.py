"""Where a node keeps its files and which systemd units run its services."""

from __future__ import annotations

from dataclasses import dataclass

from ecmptui.node import bird


@dataclass(frozen=True)
class Layout:
    """Where a node keeps its routing daemon's and nginx's files and which systemd units run
    them: Debian's own places, the same on a lab machine, a Metal server and a server of the
    user's. `daemon` None: detected on the node when it is connected."""

    bird_conf: str = "/etc/bird/bird.conf"
    bird_socket: str = "/run/bird/bird.ctl"
    nginx_conf: str = "/etc/nginx/conf.d/ecmptui.conf"
    nginx_html: str = "/var/www/ecmptui"
    state_dir: str = "/var/lib/ecmptui"
    eip_protocol: str = bird.EIP_PROTOCOL
    bird_unit: str = "bird"
    nginx_unit: str = "nginx"
    frr_conf: str = "/etc/frr/frr.conf"
    frr_unit: str = "frr"
    daemon: str | None = None

    @property
    def daemon_file(self) -> str:
        """The daemon provisioning configured (bird or frr)."""
        return f"{self.state_dir}/daemon"

    @property
    def withdrawn_flag(self) -> str:
        return f"{self.state_dir}/withdrawn"

    @property
    def withdrawn_families_file(self) -> str:
        """The families the operator withdrew alone (one a line: ipv4, ipv6)."""
        return f"{self.state_dir}/withdrawn-families"
