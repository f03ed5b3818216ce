"""Long-lived flows and an honest prober, against a real 4-node lab of its own (`ecmpf`):
the prober keeps its duration and says when it cannot keep its rate; flows stay up while
nothing changes; removing a node on a hash-threshold router breaks flows on the other nodes
too (bystanders), and adding one breaks about half of all flows."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable

from conftest import on_node, run_cli, wait_for
from ecmptui.lab import control
from ecmptui.lab.instance import LabInstance
from ecmptui.waits import load_factor
from test_dual_stack import settled
from tui import until

pytestmark = pytest.mark.lab
LAB = LabInstance("ecmpf")


def node_config(tmp: Any, lab: LabInstance, prefix: str, nodes: int = 4, extra: str = "") -> Any:
    """A settings file for `nodes` servers named prefix1.. in `lab`, with its own key
    (`extra`: more [provision] lines)."""
    cfg = tmp / "config.toml"
    cfg.write_text(
        f'target = "lab"\nlab = "{lab.name}"\n[provision]\nnodes = {nodes}\n'
        f'hostname_prefix = "{prefix}"\n{extra}\n[ssh]\nkey = "{tmp}/id"\n'
        f'known_hosts = "{tmp}/kh"\n'
    )
    return cfg


def provision(cfg: Path) -> None:
    prov = run_cli("--config", str(cfg), "provision", timeout=600)
    assert prov.returncode == 0, prov.stderr


@pytest.fixture(scope="module")
def four(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Four FRR nodes with MD5 and BFD on a hash-ECMP lab of their own (a project of their
    own: MD5 is the project's)."""
    cfg = node_config(
        tmp_path_factory.mktemp("four"),
        LAB,
        "fnode",
        extra=f'daemon = "frr"\nbfd = true\nmd5 = "{FOUR_MD5}"',
    )
    control.down(LAB)
    control.up(LAB, port=0)
    try:
        provision(cfg)
        yield cfg
    finally:
        control.down(LAB)


def test_the_prober_keeps_its_duration_and_says_when_it_slips(four: Path) -> None:
    t0 = time.monotonic()
    proc = run_cli("--config", str(four), "probe", "--rate", "20000", "--duration", "2", timeout=60)
    took = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    assert took < 2 + 3, took  # the run is 2 s, plus start-up
    assert "warning: the prober could not keep 20000/s" in proc.stderr
    out = json.loads(
        run_cli(
            "--config", str(four), "probe", "--rate", "300", "--duration", "2", "--json", timeout=60
        ).stdout
    )
    sched = out["schedule"]
    assert sched["slipped"] is False and abs(sched["sent"] - 600) <= 6
    assert sched["due"] == 600 and out["failed"] == 0
    assert len(out["by_backend"]) == 4


def test_flows_stay_up_while_nothing_changes(four: Path) -> None:
    out = json.loads(
        run_cli(
            "--config",
            str(four),
            "probe",
            "--rate",
            "50",
            "--duration",
            "4",
            "--flows",
            "200",
            "--flow-interval",
            "0.5",
            "--json",
            timeout=60,
        ).stdout
    )
    f = out["flows"]
    assert f["opened"] == 200 and f["broken"] == 0 and f["moved"] == 0


CONNECT_AND_NAME = """
import re, socket, sys
for _ in range(40):
    with socket.create_connection((sys.argv[1], 80), timeout=2) as s:
        s.sendall(b"GET / HTTP/1.1\\r\\nHost: eip\\r\\nConnection: close\\r\\n\\r\\n")
        head = s.recv(4096)
        m = re.search(rb"(?i)x-served-by:\\s*(\\S+)", head)
        print(s.getsockname()[1], m.group(1).decode() if m else "?")
"""


def test_the_fabric_hashes_ports_as_a_hardware_router_does(four: Path) -> None:
    """Which server a connection reaches is a function of its addresses and ports (what
    `ip route get` on the fabric computes), not of a random per-socket value."""
    import subprocess
    import sys

    st = json.loads(run_cli("--config", str(four), "status", "--json", check=True).stdout)
    node_of = dict(zip(st["router"]["nexthops"], st["router"]["nodes"], strict=True))
    out = subprocess.run(
        ["ip", "netns", "exec", LAB.client_ns, sys.executable, "-c", CONNECT_AND_NAME, st["eip"]],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd="/",
    ).stdout
    answered = [line.split() for line in out.splitlines()]
    batch = "".join(
        f"route get {st['eip']} from 198.18.1.2 iif rt-client ipproto tcp sport {port} dport 80\n"
        for port, _ in answered
    )
    routes = subprocess.run(
        ["ip", "-n", LAB.fabric_ns, "-batch", "-"],
        input=batch,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    predicted = [node_of[gw] for gw in re.findall(r" via (\S+) ", routes)]
    assert len(answered) == 40 and len(set(predicted)) > 1
    assert [name for _, name in answered] == predicted


def test_removing_and_adding_a_node_breaks_bystander_flows_on_a_hash_router(
    four: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report.md"
    proc = run_cli(
        "--config",
        str(four),
        "drill",
        "--family",
        "ipv4",
        "--scenario",
        "remove-node",
        "--scenario",
        "add-node",
        "--flows",
        "600",
        "--node",
        "fnode4",
        "--json",
        "--report",
        str(report),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    results = {r["name"]: r for r in json.loads(proc.stdout)["scenarios"]}
    remove, add = results["remove-node"]["flows"], results["add-node"]["flows"]
    # the removed node's own flows all break...
    assert remove["on_node"] > 30 and remove["affected"] == remove["on_node"]
    # ...and, hash-threshold, a share of the others' too: (N-2)/(2(N-1)) = 0.33 for an edge
    # next hop of 4, 0.11 for a middle one
    share = remove["bystanders"] / (remove["flows"] - remove["on_node"])
    assert 0.05 <= share <= 0.6, remove
    # adding the last next hop moves half of the hash space, so about half of all flows
    # (opened while the node was out) break; none were on the new node
    assert add["on_node"] == 0 and add["bystanders"] / add["flows"] > 0.35, add
    assert "Long-lived flows" in report.read_text()
    assert "remove-node" in report.read_text()


RLAB = LabInstance("ecmpr")
FOUR_MD5 = "fourFrrMd5"


def four_node_conf(cfg: Path) -> str:
    return str(on_node(cfg, "fnode1", lambda n: n.read("/etc/frr/frr.conf")))


@pytest.fixture(scope="module")
def resilient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A 4-node lab whose fabric runs resilient ECMP (the agent's next-hop groups), its
    fleet mixed: BIRD and FRR in turn (rnode4, which the drains take out, runs FRR)."""
    cfg = node_config(
        tmp_path_factory.mktemp("resilient"), RLAB, "rnode", extra='daemon = "bird,frr"'
    )
    control.down(RLAB)
    try:
        up = run_cli(
            "--lab", RLAB.name, "lab", "up", "--port", "0", "--ecmp", "resilient", timeout=300
        )
        assert up.returncode == 0 and "ECMP        resilient" in up.stdout, up.stderr
        provision(cfg)
        yield cfg
    finally:
        control.down(RLAB)


def test_four_frr_nodes_with_md5_and_bfd_serve_the_eip(four: Path) -> None:
    st = settled(four)  # MD5 must match on both sides for every session to come up
    assert [n["daemon"] for n in st["nodes"]] == ["frr"] * 4
    assert all(n["bfd"] == "4/4 up" and len(n["peers"]) == 4 for n in st["nodes"]), st["nodes"]
    assert (
        sorted(st["router"]["nodes"])
        == sorted(st["router"]["nodes6"])
        == [f"fnode{i}" for i in range(1, 5)]
    )
    conf = four_node_conf(four)
    assert f"neighbor metal password {FOUR_MD5}" in conf
    # the secret stays on the node: nothing ecmptui prints holds it
    assert FOUR_MD5 not in run_cli("--config", str(four), "status", "--json").stdout
    summary = json.loads(
        run_cli("--config", str(four), "probe", "--json", "--rate", "200", "--duration", "1").stdout
    )
    assert summary["failed"] == 0 and len(summary["by_backend"]) == 4, summary


def test_a_mixed_fleet_serves_from_every_node(resilient: Path) -> None:
    st = settled(resilient)
    assert [n["daemon"] for n in st["nodes"]] == ["bird", "frr", "bird", "frr"]
    assert [p["protocol"] for p in st["nodes"][1]["peers"]][:1] == ["169.254.255.1"]
    assert [p["protocol"] for p in st["nodes"][0]["peers"]][:1] == ["peer1"]
    summary = json.loads(
        run_cli(
            "--config", str(resilient), "probe", "--json", "--rate", "200", "--duration", "1"
        ).stdout
    )
    assert summary["failed"] == 0 and len(summary["by_backend"]) == 4, summary
    text = run_cli("--config", str(resilient), "status", check=True).stdout
    assert text.count(" FRR ") == 2 and text.count(" BIRD ") >= 2, text


def test_resilient_status_shows_the_mode_and_buckets(resilient: Path) -> None:
    st = json.loads(run_cli("--config", str(resilient), "status", "--json", check=True).stdout)
    assert st["router"]["mode"] == "resilient"
    assert st["router"]["buckets"] == {f"rnode{i}": 32 for i in range(1, 5)}
    assert st["router"]["buckets6"] == {f"rnode{i}": 32 for i in range(1, 5)}
    assert sorted(st["router"]["nodes"]) == [f"rnode{i}" for i in range(1, 5)]
    assert sorted(st["router"]["nodes6"]) == [f"rnode{i}" for i in range(1, 5)]
    text = run_cli("--config", str(resilient), "status", check=True).stdout
    assert "fabric next hops (resilient ECMP)" in text and "32 buckets" in text


def test_resilient_ecmp_breaks_no_bystander_and_adding_breaks_nothing(resilient: Path) -> None:
    proc = run_cli(
        "--config",
        str(resilient),
        "drill",
        "--family",
        "both",
        "--scenario",
        "remove-node",
        "--scenario",
        "add-node",
        "--flows",
        "300",
        "--node",
        "rnode4",
        "--json",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    results = {(r["name"], r["family"]): r for r in json.loads(proc.stdout)["scenarios"]}
    assert sorted(results) == [(n, f) for n in ("add-node", "remove-node") for f in (4, 6)]
    for family in (4, 6):  # each family has its own resilient group: the same promise
        remove = results[("remove-node", family)]["flows"]
        add = results[("add-node", family)]["flows"]
        assert remove["on_node"] > 30 and remove["affected"] == remove["on_node"], family
        assert remove["bystanders"] == 0, (family, remove)
        assert add["affected"] == 0 and add["bystanders"] == 0, (family, add)


def _probe_in_background(cfg: Path, *args: Any) -> Any:
    import subprocess
    import sys

    return subprocess.Popen(
        [sys.executable, "-m", "ecmptui", "--config", str(cfg), "probe", "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd="/",
    )


def test_drain_waits_for_flows_that_end_and_breaks_none(resilient: Path) -> None:
    probe = _probe_in_background(
        resilient,
        "--rate",
        "0",
        "--flows",
        "80",
        "--flow-life",
        "6",
        "--flow-interval",
        "0.5",
        "--duration",
        "14",
    )
    try:
        time.sleep(2.5)  # every flow open, on every node
        drain = run_cli(
            "--config", str(resilient), "node", "drain", "rnode4", "--timeout", "20", timeout=60
        )
        assert drain.returncode == 0, drain.stderr
        assert "withdrawn; 0 connection(s) broken" in drain.stdout
        out, _ = probe.communicate(timeout=30)
    finally:
        probe.kill()
        run_cli("--config", str(resilient), "node", "announce", "rnode4")
    flows = json.loads(out)["flows"]
    assert flows["broken"] == 0 and flows["ended"] == 80
    assert "weight 1: new connections go to the others" in drain.stdout


def test_drain_with_traffic_counts_what_it_broke_and_says_why(resilient: Path) -> None:
    probe = _probe_in_background(
        resilient, "--rate", "200", "--flows", "60", "--flow-interval", "0.5", "--duration", "10"
    )
    try:
        time.sleep(2.5)
        drain = run_cli(
            "--config", str(resilient), "node", "drain", "rnode4", "--timeout", "3", timeout=60
        )
        assert drain.returncode == 0, drain.stderr
        out, _ = probe.communicate(timeout=30)
    finally:
        probe.kill()
        run_cli("--config", str(resilient), "node", "announce", "rnode4")
    flows = json.loads(out)["flows"]
    said = int(drain.stdout.split("withdrawn anyway, ")[1].split(" connection")[0])
    assert said > 0 and "still open after 3 s" in drain.stdout
    assert "NOT drained: the timeout ended the wait" in drain.stdout  # not read as a drain
    assert flows["broken"] == flows["broken_on"].get("rnode4", 0) == said
    assert json.loads(out)["failed"] == 0  # new connections never failed


KILL_HELPER = (
    "import os\nfor p in filter(str.isdigit, os.listdir('/proc')):\n"
    "    try:\n        cmd = open(f'/proc/{p}/cmdline', 'rb').read()\n"
    "    except OSError:\n        continue\n"
    "    if cmd.startswith(b'ip\\0-force\\0-batch'):\n"
    "        os.kill(int(p), 9); print(p)\n"
)


def _agent_log(since: float) -> list[str]:
    from ecmptui.lab.router import AGENT_UNIT, fabric_bird

    out = (
        fabric_bird(RLAB)
        .machine.run("journalctl", "-u", AGENT_UNIT, "--no-pager", "-o", "cat")
        .stdout
    )
    return [ln for ln in out.splitlines() if ln[:1].isdigit() and float(ln.split()[0]) > since]


def test_reprovisioned_nodes_are_forwarded_to_and_a_killed_helper_recovers(resilient: Path) -> None:
    """Regression (issue 22, P1): re-created server links made the agent's long-lived
    `ip -batch` fail ("Invalid device index") and the EIP went unrouted while every check
    said it was fine. Reprovisioning must leave the service answering, and a killed helper
    must be noticed, logged and replaced."""
    for _ in range(2):
        assert run_cli("--config", str(resilient), "deprovision", timeout=120).returncode == 0
        prov = run_cli("--config", str(resilient), "provision", timeout=600)
        assert prov.returncode == 0, prov.stderr
        assert "answered (by rnode1, rnode2, rnode3, rnode4)" in prov.stdout
        summary = json.loads(
            run_cli(
                "--config",
                str(resilient),
                "probe",
                "--json",
                "--rate",
                "200",
                "--duration",
                "1",
                check=True,
            ).stdout
        )
        assert summary["failed"] == 0 and len(summary["by_backend"]) == 4
    from ecmptui.lab.router import fabric_bird

    started = time.time()
    killed = fabric_bird(RLAB).machine.run("python3", "-c", KILL_HELPER).stdout.split()
    assert killed, "no ip helper ran in the fabric"
    said = wait_for(lambda: [ln for ln in _agent_log(started) if "recovered" in ln], timeout=10)
    assert said, _agent_log(started)
    took = float(said[0].split()[0]) - started
    assert took < 2 * load_factor() + 0.5, f"recovered after {took:.2f} s"
    # the new helper works: a withdraw leaves the fabric, an announce comes back
    run_cli("--config", str(resilient), "node", "withdraw", "rnode2", check=True)
    try:
        st = wait_for(lambda: "rnode2" not in _status(resilient)["router"]["nodes"])
        assert st
    finally:
        run_cli("--config", str(resilient), "node", "announce", "rnode2", check=True)
    st = wait_for(lambda: "rnode2" in (s := _status(resilient))["router"]["nodes"] and s)
    assert st and st["router"]["agent"] == "ok"
    assert run_cli("--config", str(resilient), "check").returncode == 0


def _status(cfg: Path) -> dict:
    return json.loads(run_cli("--config", str(cfg), "status", "--json", check=True).stdout)


def test_a_hash_router_drain_says_what_it_cannot_do(four: Path) -> None:
    proc = run_cli("--config", str(four), "node", "drain", "fnode2", timeout=60)
    assert proc.returncode == 2
    assert "hash-threshold ECMP" in proc.stderr and "cannot move" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    st = json.loads(run_cli("--config", str(four), "status", "--json", check=True).stdout)
    assert not any(n["withdrawn"] for n in st["nodes"])  # nothing changed


async def test_the_dashboard_timeline_counts_the_flows_an_action_broke(four: Path) -> None:
    """Long-lived flows beside the dashboard's probe: a withdraw's timeline row says how
    many flows it broke on the node and elsewhere."""
    from ecmptui import config
    from ecmptui.app import EcmpApp
    from ecmptui.cockpit import LocalCockpit

    app = EcmpApp(LocalCockpit(config.load(four)), rate=50, flows=120)
    try:
        async with app.run_test(size=(160, 40)) as pilot:
            await until(
                pilot,
                lambda: len(app.traffic.flow_events) >= 120 and app.status is not None,
                "every flow open",
                timeout=30,
            )
            table = app.screen.query_one("#nodes", DataTable)
            table.move_cursor(row=table.get_row_index("fnode3"))
            await pilot.press("w")
            await until(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen", "question")
            await pilot.press("enter")
            await until(
                pilot,
                lambda: app.traffic.timeline and app.traffic.timeline[-1].flows,
                "the withdraw's flows counted",
                timeout=30,
            )
            f = app.traffic.timeline[-1].flows
            assert f is not None
            assert f["on_node"] > 0 and f["affected"] == f["on_node"], f
            assert "flows broken:" in app.traffic.timeline[-1].summary()
            await pilot.press("q")
    finally:
        run_cli("--config", str(four), "node", "announce", "fnode3")


def test_disruption_counts_where_each_flow_was() -> None:
    from ecmptui.traffic.flows import FlowEvent, disruption, flows_on

    ev = [
        FlowEvent(1.0, 0, "open", "a"),
        FlowEvent(1.1, 1, "open", "b"),
        FlowEvent(1.2, 2, "open", "b"),
        FlowEvent(1.3, 3, "open", "c"),
        FlowEvent(5.0, 0, "break", "a", "reset"),
        FlowEvent(5.1, 1, "break", "b", "reset"),
        FlowEvent(5.3, 0, "moved", "c"),
        FlowEvent(9.0, 3, "break", "c", "reset"),
    ]
    assert flows_on(ev, 2.0) == {0: "a", 1: "b", 2: "b", 3: "c"}
    assert disruption(ev, 4.0, 6.0, "a", 4) == {
        "flows": 4,
        "on_node": 1,
        "affected": 1,
        "bystanders": 1,
        "moved": 1,
    }
