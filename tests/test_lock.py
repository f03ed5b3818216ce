"""The writer lock: one writer per deployment, a clear refusal, a bounded wait (no root)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ecmptui.deployment import lock as lock_mod
from ecmptui.deployment.lock import BusyError, DeploymentLock
from ecmptui.lab.control import LabInfo
from ecmptui.lab.instance import LabInstance

HOLD = """
import sys, time
from ecmptui.deployment import lock
lock.lock_dir = lambda: __import__("pathlib").Path(sys.argv[1])
with lock.DeploymentLock("lab test", "provision"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


@pytest.fixture
def locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(lock_mod, "lock_dir", lambda: tmp_path)
    return tmp_path


def _holder(locks: Any, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(locks), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_with_who_holds_it(locks: Any) -> None:
    proc = _holder(locks, 5)
    try:
        with pytest.raises(BusyError) as err:
            DeploymentLock("lab test", "drill").acquire()
        msg = str(err.value)
        assert msg.startswith(f"busy: provision by PID {proc.pid} since ")
        assert "holds lab test" in msg and "--wait SECONDS" in msg
        DeploymentLock("lab other", "drill").acquire()  # another deployment is free
    finally:
        proc.kill()
        proc.wait()


def test_the_lock_goes_with_its_holder_and_wait_is_bounded(locks: Any) -> None:
    proc = _holder(locks, 0.8)
    t0 = time.monotonic()
    with DeploymentLock("lab test", "drill", wait=10):  # waits for the holder to finish
        assert 0.3 < time.monotonic() - t0 < 5
    proc.wait()
    killed = _holder(locks, 30)
    killed.kill()  # a crashed holder never leaves the deployment locked
    killed.wait()
    with DeploymentLock("lab test", "drill"):
        pass
    again = _holder(locks, 5)
    try:
        t0 = time.monotonic()
        with pytest.raises(BusyError, match=r"\(waited 1 s\)"):
            DeploymentLock("lab test", "drill", wait=1).acquire()
        assert 0.9 < time.monotonic() - t0 < 3
    finally:
        again.kill()
        again.wait()


@pytest.mark.lab
def test_lab_down_waits_for_the_writer_of_the_lab(lab: LabInfo, lab_instance: LabInstance) -> None:
    """Regression (issue 22): `lab down` during a provision removed the lab under it."""
    from conftest import run_cli
    from ecmptui.lab import control

    with DeploymentLock(f"lab {lab_instance.name}", "provision"):
        proc = run_cli("--lab", lab_instance.name, "lab", "down")
        assert proc.returncode == 2, proc.stderr
        assert f"busy: provision by PID {__import__('os').getpid()}" in proc.stderr
        assert control.read_info(lab_instance) is not None  # still up
