"""The `lab up` supervisor: builds the fabric, runs the core router and serves the lab API.

Started detached by `ecmptui lab up`; it reports `READY` or `ERROR <line>` on stdout once, then
serves until SIGTERM/SIGINT/SIGHUP, when it removes everything it made. If it is SIGKILLed,
`ecmptui lab down` finds and removes the rest by name.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shutil
import signal
import sys
import threading
import uuid
from pathlib import Path

from ecmptui.errors import EcmpError
from ecmptui.lab import fabric, tls
from ecmptui.lab.api import LabApiServer
from ecmptui.lab.cloud import Cloud
from ecmptui.lab.instance import LabInstance, mgmt_net
from ecmptui.lab.router import ECMP_MODES, Backbone, Resilient

log = logging.getLogger("ecmptui.lab")


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def _report(line: str) -> None:
    """Tell `lab up` how the start went, then detach stdout. If `lab up` is gone (killed
    while waiting), the lab still runs: only the message is lost."""
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except OSError:  # BrokenPipeError: nobody is reading any more
        log.warning("lab up is gone; the lab runs on (%s)", line)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


def cleanup(lab: LabInstance) -> None:
    fabric.teardown(lab)
    shutil.rmtree(lab.state_dir, ignore_errors=True)


def serve(
    lab: LabInstance,
    port: int,
    slot: int,
    adopt: bool = False,
    ecmp: str = "hash",
    resilient: Resilient = Resilient(),
) -> int:
    """Build and serve the lab; with `adopt`, take over a running lab whose supervisor died
    (same token, certificates, port, machines and API objects)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    try:
        tls_dir = lab.state_dir / "tls"
        if adopt:
            cert, key = tls_dir / "server.pem", tls_dir / "server.key"
            token = lab.token_file.read_text().strip()
            router = Backbone(lab)
            cloud = Cloud(lab, slot, router, "")
            cloud.load()
            project_id = cloud.project["id"]
        else:
            _, cert, key = tls.make_certificates(tls_dir)
            token = secrets.token_urlsafe(32)
            _write_private(lab.token_file, token + "\n")
            fabric.build_base(lab, slot)
            router = Backbone(lab, ecmp, resilient)
            router.start()
            project_id = str(uuid.uuid4())
            cloud = Cloud(lab, slot, router, project_id)
            with cloud.lock:
                cloud.save()
        try:
            server = LabApiServer(cloud, token, port, cert, key)
        except OSError as exc:
            raise EcmpError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from exc
        server.serve_in_thread()
        info = {
            "name": lab.name,
            "pid": os.getpid(),
            "endpoint": f"127.0.0.1:{server.port}",
            "project_id": project_id,
            "token_file": str(lab.token_file),
            "ca_file": str(lab.ca_file),
            "known_hosts": str(lab.known_hosts),
            "slot": slot,
            "mgmt_subnet": str(mgmt_net(slot)),
            "client_namespace": lab.client_ns,
            "fabric_namespace": lab.fabric_ns,
            "ecmp": router.mode,
        }
        tmp = lab.info_file.with_suffix(".new")
        tmp.write_text(json.dumps(info, indent=2) + "\n")
        tmp.replace(lab.info_file)
    except Exception as exc:
        log.exception("lab start failed")
        if not adopt:  # an adopted lab's machines still serve: leave them to `lab down`
            cleanup(lab)
        _report(f"ERROR {exc}".splitlines()[0])
        return 1
    log.info("lab %s ready on %s", lab.name, info["endpoint"])
    _report("READY")
    stop.wait()
    log.info("lab %s stopping", lab.name)
    server.shutdown()
    cloud.shutdown()  # stops its machines and reaps their launchers: no zombie left
    cleanup(lab)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ecmptui-lab-daemon")
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--slot", type=int, required=True)
    parser.add_argument("--adopt", action="store_true")
    parser.add_argument("--ecmp", choices=ECMP_MODES, default="hash")
    parser.add_argument("--buckets", type=int, default=Resilient.buckets)
    parser.add_argument("--idle-timer", type=int, default=Resilient.idle_timer)
    parser.add_argument("--unbalanced-timer", type=int, default=Resilient.unbalanced_timer)
    args = parser.parse_args(argv)
    lab = LabInstance(args.name)
    logging.basicConfig(
        filename=lab.log_file,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return serve(
        lab,
        args.port,
        args.slot,
        adopt=args.adopt,
        ecmp=args.ecmp,
        resilient=Resilient(args.buckets, args.idle_timer, args.unbalanced_timer),
    )


if __name__ == "__main__":
    raise SystemExit(main())
