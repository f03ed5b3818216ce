"""Shared fixtures: one real lab per test session, under its own instance name."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ecmptui.deployment.inventory import ApiDeployment
from ecmptui.lab import control
from ecmptui.lab.control import LabInfo
from ecmptui.lab.instance import LabInstance

# The suite's own lab: never the user's (default `ecmp`).
TEST_LAB = os.environ.get("ECMPTUI_TEST_LAB", "ecmpt")
LAB_TOOLS = ("ip", "unshare", "nsenter", "sysctl")


Deployed = tuple[Path, dict[str, Any]]  # the `deployed` fixture: (config path, inventory)


def _lab_unavailable() -> str | None:
    """Why lab tests cannot run here (None: they can)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces and lab machines): run the suite as root"
    import shutil

    missing = [t for t in LAB_TOOLS if shutil.which(t) is None]
    if missing:
        return f"lab tools missing: {', '.join(missing)} (run `bash .ci/setup`)"
    return None


SUITE_LOCK = Path("/run/lock/ecmptui-test-suite.lock")


def _hold_suite_lock() -> None:
    """One run of the lab tests at a time on a machine: they share lab names (`ecmpt`, ...),
    and a second run would tear the first one's labs down under it. A second run waits."""
    import fcntl

    fd = os.open(SUITE_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"\nanother run of the lab tests holds {SUITE_LOCK}: waiting for it", flush=True)
        fcntl.flock(fd, fcntl.LOCK_EX)
    # held (fd kept open) until this process ends: the kernel drops it then, also on a crash
    os.set_inheritable(fd, False)


def pytest_configure(config: Any) -> None:
    """With pytest-xdist (`-n`), the run's controller takes the test-suite lock for its
    workers (they collect on their own: each taking it would serialise them)."""
    workers = getattr(config.option, "numprocesses", None)
    if workers and not os.environ.get("PYTEST_XDIST_WORKER"):
        marker = config.option.markexpr or ""
        if _lab_unavailable() is None and "not lab" not in marker and SUITE_LOCK.parent.is_dir():
            _hold_suite_lock()


def pytest_collection_modifyitems(config: Any, items: Any) -> None:
    """Tests marked `lab` are skipped, with the reason, where no lab can run; where they
    run, this run takes the machine's test-suite lock first, and with pytest-xdist they
    all go to one worker (`--dist loadgroup`: they share the session's lab)."""
    lab_items = [item for item in items if item.get_closest_marker("lab") is not None]
    reason = _lab_unavailable()
    if reason is None:
        for item in lab_items:
            item.add_marker(pytest.mark.xdist_group("lab"))
        if lab_items and SUITE_LOCK.parent.is_dir() and not os.environ.get("PYTEST_XDIST_WORKER"):
            _hold_suite_lock()
        return
    for item in lab_items:
        item.add_marker(pytest.mark.skip(reason=reason))


def run_cli(
    *args: str, env: dict | None = None, check: bool = False, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run the real `ecmptui` command (as a module of this interpreter)."""
    # cwd "/": exercise the installed package, not the source tree next to the tests
    proc = subprocess.run(
        [sys.executable, "-m", "ecmptui", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        cwd="/",
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"ecmptui {' '.join(args)} failed: {proc.stderr}")
    return proc


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Wall-clock times render the same everywhere (fixed data); restored afterwards."""
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def lab_down_config(tmp_path: Path) -> Path:
    """Settings for a lab that is never up (the served app says so; nothing is probed)."""
    cfg = tmp_path / "down.toml"
    cfg.write_text('target = "lab"\nlab = "zz9"\n')
    return cfg


@pytest.fixture(scope="session")
def lab_instance() -> LabInstance:
    return LabInstance(TEST_LAB)


@pytest.fixture(scope="session")
def lab(lab_instance: LabInstance) -> Iterator[Any]:
    """A running lab shared by the session; always torn down, even when tests fail."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    control.down(lab_instance)  # leftovers of a crashed earlier run
    info, _ = control.up(lab_instance, port=0)
    try:
        yield info
    finally:
        control.down(lab_instance)


@pytest.fixture(scope="session")
def ssh_keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A fresh ed25519 key pair: (private key path, public key line)."""
    import asyncssh

    key = asyncssh.generate_private_key("ssh-ed25519")
    path = tmp_path_factory.mktemp("ssh") / "id_ed25519"
    key.write_private_key(path)
    path.chmod(0o600)
    return path, key.export_public_key().decode().strip()


def probers() -> list[int]:
    """Prober processes aimed at the test lab (a bench on its own lab may run beside)."""
    out = subprocess.run(
        ["pgrep", "-f", f"ecmptui probe .*--netns {TEST_LAB}-client"],
        capture_output=True,
        text=True,
    )
    return [int(p) for p in out.stdout.split()]


def make_config(directory: Path, *, tag: str, prefix: str, extra: str = "") -> Path:
    """A settings file for the test lab: its own tag, host names and SSH key."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.toml"
    path.write_text(
        f'target = "lab"\nlab = "{TEST_LAB}"\n'
        f'[provision]\ntag = "{tag}"\nhostname_prefix = "{prefix}"\n{extra}\n'
        f'[ssh]\nkey = "{directory}/id_ed25519"\nknown_hosts = "{directory}/known_hosts"\n'
    )
    return path


CLIENT_FETCH = """
import collections, http.client, json, sys
url_host, n = sys.argv[1], int(sys.argv[2])
seen = collections.Counter()
for _ in range(n):
    c = http.client.HTTPConnection(url_host, 80, timeout=2)  # a new TCP connection each time
    try:
        c.request("GET", "/")
        seen[c.getresponse().read().decode().strip()] += 1
    except OSError as exc:
        seen["error: " + type(exc).__name__] += 1
    finally:
        c.close()
print(json.dumps(seen))
"""


def fetch_from_client(lab: LabInfo, host: str, n: int) -> dict[str, int]:
    """n requests to host:80 from the lab's client namespace, one connection each."""
    import json

    proc = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            lab.client_namespace,
            sys.executable,
            "-c",
            CLIENT_FETCH,
            host,
            str(n),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(proc.stdout)


@pytest.fixture(scope="session")
def deployed(lab: LabInfo, tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    """Two nodes provisioned with the CLI in the test lab: (config path, inventory)."""
    import json

    cfg = make_config(tmp_path_factory.mktemp("deployed"), tag="ecmpt-main", prefix="tnode")
    proc = run_cli("--config", str(cfg), "provision", "--nodes", "2", "--json", check=True)
    return cfg, json.loads(proc.stdout)


def status(cfg: Path) -> dict:
    """`ecmptui status --json` for a settings file."""
    import json

    return json.loads(run_cli("--config", str(cfg), "status", "--json", check=True).stdout)


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.1) -> Any:
    """Poll `predicate` until it returns something truthy or `timeout` passes (bounded)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def api_deployment(cfg: Path) -> ApiDeployment:
    """The deployment of a lab settings file, with its API client."""
    from ecmptui import config
    from ecmptui.targets import open_deployment

    d = open_deployment(config.load(cfg))
    assert isinstance(d, ApiDeployment)
    return d


def machine_of(lab_instance: LabInstance, rec: Any) -> Any:
    """The lab machine behind a node record (its index in the lab is in its mgmt address)."""
    from ecmptui.lab import image
    from ecmptui.lab.machine import Machine

    n = int(rec.mgmt_address.rsplit(".", 1)[1]) - 10
    return Machine(
        lab_instance.server_machine(n),
        lab_instance.server_ns(n),
        lab_instance.server_dir(n),
        image.image("server").rootfs,
    )


def on_node(cfg: Path, name: str, action: Any) -> Any:
    """Open an SSH session to node `name` of a settings file and return `await action(node)`."""
    import asyncio

    from ecmptui import config
    from ecmptui.targets import open_deployment

    d = open_deployment(config.load(cfg))
    rec = d.inventory().node(name)

    async def go() -> Any:
        async with d.node(rec) as node:
            return await action(node)

    return asyncio.run(go())
