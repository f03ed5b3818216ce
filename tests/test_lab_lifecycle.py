"""`ecmptui lab up/down/status` as a user runs them, and the clean-up guarantees."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import packet
import pytest

from conftest import Deployed, run_cli
from ecmptui.lab import fabric
from ecmptui.lab.control import LabInfo
from ecmptui.lab.instance import LabInstance

pytestmark = pytest.mark.lab


def assert_gone(lab: LabInstance) -> None:
    """Nothing of the instance: no namespace, link, machine cgroup, process, mount or file."""
    namespaces, links = fabric.present(lab)
    assert namespaces == [] and links == []
    assert fabric.machine_cgroups(lab) == []
    assert not lab.state_dir.exists()
    procs = subprocess.run(["pgrep", "-af", str(lab.state_dir)], capture_output=True, text=True)
    assert procs.stdout.strip() == ""
    in_machines: list[str] = []
    for proc in Path("/proc").iterdir():
        try:
            dead = "\nState:\tZ" in (proc / "status").read_text()
            if f"/ecmptui/{lab.name}-" in (proc / "cgroup").read_text() and not dead:
                in_machines.append(proc.name)
        except OSError:
            pass
    # (a machine's processes whose parent was a SIGKILLed supervisor are dead but wait for
    # the host's init to reap them: zombies hold no resources and are not counted)
    assert in_machines == []
    mounts = subprocess.run(
        ["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True
    ).stdout
    assert str(lab.state_dir) not in mounts
    ip_links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert f"{lab.name}-" not in ip_links


def test_up_is_idempotent_and_status_reports(lab: LabInfo, lab_instance: LabInstance) -> None:
    again = json.loads(
        run_cli("--lab", lab_instance.name, "lab", "up", "--json", check=True).stdout
    )
    assert isinstance(again.pop("vantages"), list)  # the sites some tests add
    assert again == lab.public()
    text = run_cli("--lab", lab_instance.name, "lab", "up", check=True).stdout
    assert "was already up" in text and lab.endpoint in text
    st = json.loads(
        run_cli("--lab", lab_instance.name, "lab", "status", "--json", check=True).stdout
    )
    assert st["up"] is True and st["endpoint"] == lab.endpoint
    # every reserved EIP has the router's view, every device its machine and sessions
    assert set(st["router"]) == set(st["eips"])
    assert all(
        d["machine"]
        and d["state"] in ("active", "provisioning", "queued", "rebooting")
        and isinstance(d["sessions"], list)
        for d in st["devices"]
    )


def _device_with_sshd(info: Any) -> None:
    os.environ["REQUESTS_CA_BUNDLE"] = info["ca_file"]
    m = packet.Manager(auth_token=Path(info["token_file"]).read_text().strip())
    m.end_point = info["endpoint"]
    d = m.create_device(
        info["project_id"], "teardown", "t1.small", metro="lab", operating_system="debian_12"
    )
    deadline = time.monotonic() + 10
    while m.get_device(d.id).state != "active":
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.mark.parametrize("kill", [False, True], ids=["graceful", "after-sigkill"])
def test_down_leaves_nothing(kill: Any) -> None:
    lab = LabInstance("ecmpk")
    run_cli("--lab", lab.name, "lab", "down")
    try:
        info = json.loads(
            run_cli(
                "--lab", lab.name, "lab", "up", "--port", "0", "--vantages", "1", "--json",
                check=True,
            ).stdout
        )  # fmt: skip
        assert info["vantages"] == [lab.site_ns(1)]
        _device_with_sshd(info)
        # fabric, client, site1, core1, core2, srv1; machines: fabric, core1, core2, srv1
        assert len(fabric.present(lab)[0]) == 6
        assert len(fabric.machine_cgroups(lab)) == 4
        if kill:
            pid = json.loads(lab.info_file.read_text())["pid"]
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
            st = json.loads(run_cli("--lab", lab.name, "lab", "status", "--json").stdout)
            assert st["up"] is False and st["leftovers"]
        down = run_cli("--lab", lab.name, "lab", "down", check=True)
        assert "is down" in down.stdout
        assert_gone(lab)
        again = run_cli("--lab", lab.name, "lab", "down", check=True)
        assert "nothing to remove" in again.stdout
    finally:
        run_cli("--lab", lab.name, "lab", "down")
        os.environ.pop("REQUESTS_CA_BUNDLE", None)


def test_port_in_use_is_one_line_exit_2() -> None:
    lab = LabInstance("ecmpp")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = run_cli("--lab", lab.name, "lab", "up", "--port", str(port))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"ecmptui: error: port 127.0.0.1:{port} is in use: pick another with `lab up --port`"
    )
    assert_gone(lab)


def test_partly_present_lab_is_refused_then_cleaned() -> None:
    lab = LabInstance("ecmpv")
    run_cli("--lab", lab.name, "lab", "down")
    fabric.run(["ip", "netns", "add", lab.fabric_ns])
    try:
        proc = run_cli("--lab", lab.name, "lab", "up", "--port", "0")
        assert proc.returncode == 2
        assert "partly present (namespace ecmpv-fabric)" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        assert fabric.present(lab)[0] == [lab.fabric_ns]  # untouched
    finally:
        run_cli("--lab", lab.name, "lab", "down", check=True)
    assert_gone(lab)


def test_missing_program_names_the_debian_package(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for d in ("/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        for prog in Path(d).iterdir():
            if prog.name != "nsenter" and not (bindir / prog.name).exists():
                (bindir / prog.name).symlink_to(prog)
    proc = run_cli("--lab", "ecmpm", "lab", "up", env={"PATH": str(bindir)})
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "ecmptui: error: nsenter not found: install the Debian package util-linux"
    )


def test_not_root_is_refused() -> None:
    proc = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            str(Path(sys.executable)),
            "-m",
            "ecmptui",
            "--lab",
            "ecmpn",
            "lab",
            "up",
        ],
        capture_output=True,
        text=True,
        cwd="/tmp",
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (
        "ecmptui: error: the lab needs root (namespaces, machines, veths): run as root"
    )


def test_invalid_lab_name() -> None:
    proc = run_cli("--lab", "Bad-Name", "lab", "status")
    assert proc.returncode == 2
    assert "invalid lab name 'Bad-Name'" in proc.stderr


def test_unreachable_mirror_is_one_line_and_keeps_the_cached_image() -> None:
    from ecmptui.lab import image

    cached = image.image("plain")
    was_ready = cached.ready()
    proc = run_cli(
        "lab",
        "image",
        "--os",
        "plain",
        "--rebuild",
        env={"ECMPTUI_DEBIAN_MIRROR": "http://127.0.0.1:9/debian"},
    )
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "ecmptui: error: cannot reach the Debian package mirror http://127.0.0.1:9/debian"
    )
    assert "Traceback" not in proc.stderr
    assert cached.ready() == was_ready  # a failed rebuild leaves the cached image as it was
    assert not list(cached.path.parent.glob("*.building-*"))


def test_a_hung_api_is_one_clear_error_within_the_timeout(lab: LabInfo, tmp_path: Path) -> None:
    """The lab API stopped (SIGSTOP): commands give up after metal.timeout, never hang."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'target = "lab"\nlab = "{lab.name}"\n[metal]\ntimeout = 1.5\n'
        f'[ssh]\nkey = "{tmp_path}/id"\nknown_hosts = "{tmp_path}/kh"\n'
    )
    os.kill(lab.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        proc = run_cli("--config", str(cfg), "status", timeout=60)
        took = time.monotonic() - t0
    finally:
        os.kill(lab.pid, signal.SIGCONT)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"ecmptui: error: the Metal API at {lab.endpoint} did not answer within 1.5 s"
    )
    assert took < 10


def test_ssh_only_actions_work_through_an_api_outage(lab: LabInfo, deployed: Deployed) -> None:
    """With the API stopped, withdraw/announce still work over SSH from the last inventory
    the API gave, and say so."""
    cfg, _ = deployed
    run_cli("--config", str(cfg), "status", check=True)  # the API answers: inventory cached
    text = cfg.read_text().replace("[ssh]", "[metal]\ntimeout = 1.0\n[ssh]")
    slow = cfg.with_name("outage.toml")
    slow.write_text(text)
    os.kill(lab.pid, signal.SIGSTOP)
    try:
        out = run_cli("--config", str(slow), "node", "withdraw", "tnode2", timeout=60)
        back = run_cli("--config", str(slow), "node", "announce", "tnode2", timeout=60)
        # status too answers from the nodes (it aborted before: issue 22)
        st = run_cli("--config", str(slow), "status", "--json", timeout=60)
        check = run_cli("--config", str(slow), "check", "--json", timeout=60)
    finally:
        os.kill(lab.pid, signal.SIGCONT)
    for proc, said in ((out, "stopped announcing"), (back, "announcing the EIP again")):
        assert proc.returncode == 0, proc.stderr
        assert said in proc.stdout
        assert "did not answer within 1 s; using the inventory it gave at" in proc.stderr
    assert st.returncode == 0, st.stderr
    data = json.loads(st.stdout)
    assert "using the inventory it gave at" in data["error"]
    assert [n["bgp_state"] for n in data["nodes"]] == ["Established", "Established"]
    assert check.returncode == 0, check.stderr
    assert "using the inventory it gave at" in check.stderr
    # two nodes, then the service per family (a dual stack)
    assert [r["ok"] for r in json.loads(check.stdout)] == [True, True, True, True]


def test_a_lab_whose_supervisor_died_is_adopted_not_rebuilt() -> None:
    """SIGKILL of the supervisor: its machines keep serving, `lab status` says so, and
    `lab up` takes them back (same endpoint, token, devices, machines)."""
    lab = LabInstance("ecmpa")
    run_cli("--lab", lab.name, "lab", "down")
    try:
        info = json.loads(
            run_cli("--lab", lab.name, "lab", "up", "--port", "0", "--json", check=True).stdout
        )
        _device_with_sshd(info)
        m = packet.Manager(auth_token=Path(info["token_file"]).read_text().strip())
        m.end_point = info["endpoint"]
        (dev,) = m.list_all_devices(info["project_id"])
        before = json.loads(
            run_cli("--lab", lab.name, "lab", "status", "--json", check=True).stdout
        )
        machine_pid = before["devices"][0]["pid"]
        os.kill(json.loads(lab.info_file.read_text())["pid"], signal.SIGKILL)
        time.sleep(0.3)
        st = json.loads(run_cli("--lab", lab.name, "lab", "status", "--json").stdout)
        assert st["up"] is False and st["adoptable"] is True
        text = run_cli("--lab", lab.name, "lab", "status").stdout
        assert "`ecmptui lab up` adopts them" in text
        again = json.loads(run_cli("--lab", lab.name, "lab", "up", "--json", check=True).stdout)
        assert again["endpoint"] == info["endpoint"]
        assert again["project_id"] == info["project_id"]
        assert m.get_device(dev.id).state == "active"  # the old token still works
        after = json.loads(run_cli("--lab", lab.name, "lab", "status", "--json", check=True).stdout)
        assert after["devices"][0]["pid"] == machine_pid  # the same machine, not rebooted
    finally:
        run_cli("--lab", lab.name, "lab", "down")
        os.environ.pop("REQUESTS_CA_BUNDLE", None)
    assert_gone(lab)


def test_lab_up_killed_while_starting_leaves_a_working_lab() -> None:
    lab = LabInstance("ecmpu")
    run_cli("--lab", lab.name, "lab", "down")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ecmptui", "--lab", lab.name, "lab", "up", "--port", "0"],
            cwd="/",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not lab.pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.kill()  # `lab up` dies while its supervisor is still starting
        proc.wait()
        up = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            st = json.loads(run_cli("--lab", lab.name, "lab", "status", "--json").stdout)
            if st["up"]:
                up = st
                break
            time.sleep(0.2)
        assert up is not None, "the supervisor did not survive its starter"
        assert up["routers"]["core1"]["bird"] == "running"
    finally:
        run_cli("--lab", lab.name, "lab", "down")
    assert_gone(lab)


def test_two_labs_started_at_the_same_moment_both_come_up_on_their_own_subnets() -> None:
    """Regression (issue 22): the mgmt slot was chosen by check-then-act, so two labs took
    the same subnet and one lab's provision reached the other's machines."""
    labs = [LabInstance("ecmpx"), LabInstance("ecmpy")]
    for lab in labs:
        run_cli("--lab", lab.name, "lab", "down")
    try:
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ecmptui",
                    "--lab",
                    lab.name,
                    "lab",
                    "up",
                    "--port",
                    "0",
                    "--json",
                ],
                cwd="/",
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for lab in labs
        ]
        outs = [p.communicate(timeout=300) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
        infos = [
            json.loads(run_cli("--lab", lab.name, "lab", "status", "--json", check=True).stdout)
            for lab in labs
        ]
        assert infos[0]["mgmt_subnet"] != infos[1]["mgmt_subnet"]
        assert infos[0]["endpoint"] != infos[1]["endpoint"]
        for st in infos:
            assert st["up"] and st["routers"]["core2"]["bird"] == "running"
    finally:
        for lab in labs:
            run_cli("--lab", lab.name, "lab", "down")
    for lab in labs:
        assert_gone(lab)
