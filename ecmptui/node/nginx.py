"""nginx config and page for a node: "Welcome to nginx N" plus an X-Served-By header."""

from __future__ import annotations

import re

NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,63}$")


def page(index: int) -> str:
    return f"Welcome to nginx {index}\n"


def _check(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise ValueError(f"node name {name!r} cannot be used in an nginx header")
    return name


def server_block(name: str, html_dir: str, listen: tuple[str, ...] = ("80",)) -> str:
    """The server block that answers on each of `listen` (the EIPs, one per family)."""
    return (
        "server {\n" + "".join(f"  listen {one};\n" for one in listen) + f"  root {html_dir};\n"
        f'  add_header X-Served-By "{_check(name)}" always;\n'
        # long-lived flows (`probe --flows`): a connection is closed by ECMP, not by nginx
        "  keepalive_timeout 3600s;\n"
        "  keepalive_requests 1000000;\n"
        "  location / { index index.html; }\n"
        '  location = /healthz { access_log off; return 200 "ok\\n"; }\n'
        "}\n"
    )


def standalone_config(name: str, prefix: str) -> str:
    """A whole nginx.conf for a lab node: every path under `prefix` (servers share one disk)."""
    return (
        "worker_processes 1;\n"
        f"pid {prefix}/nginx.pid;\n"
        f"error_log {prefix}/logs/error.log warn;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        "  access_log off;\n"
        f"  client_body_temp_path {prefix}/tmp/client_body;\n"
        f"  proxy_temp_path {prefix}/tmp/proxy;\n"
        f"  fastcgi_temp_path {prefix}/tmp/fastcgi;\n"
        f"  uwsgi_temp_path {prefix}/tmp/uwsgi;\n"
        f"  scgi_temp_path {prefix}/tmp/scgi;\n"
        "  default_type text/plain;\n"
        + "".join("  " + line + "\n" for line in server_block(name, f"{prefix}/html").splitlines())
        + "}\n"
    )
