"""Long-lived flows and an honest prober, against a real 4-node lab of its own (`ecmpf`):
the prober keeps its duration and says when it cannot keep its rate; flows stay up while
nothing changes; removing a node on a hash-threshold router breaks flows on the other nodes
too (bystanders), and adding one breaks about half."""

from __future__ import annotations

import json
import time

import pytest

from conftest import run_cli
from ecmptui.lab import control
from ecmptui.lab.instance import LabInstance

pytestmark = pytest.mark.lab
LAB = LabInstance("ecmpf")


@pytest.fixture(scope="module")
def four(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("four")
    control.down(LAB)
    control.up(LAB, port=0)
    cfg = tmp / "config.toml"
    cfg.write_text(f'target = "lab"\nlab = "{LAB.name}"\n[provision]\nnodes = 4\n'
                   f'hostname_prefix = "fnode"\n[ssh]\nkey = "{tmp}/id"\n'
                   f'known_hosts = "{tmp}/kh"\n')
    try:
        prov = run_cli("--config", str(cfg), "provision", timeout=600)
        assert prov.returncode == 0, prov.stderr
        yield cfg
    finally:
        control.down(LAB)


def test_the_prober_keeps_its_duration_and_says_when_it_slips(four):
    t0 = time.monotonic()
    proc = run_cli("--config", str(four), "probe", "--rate", "20000", "--duration", "2",
                   timeout=60)
    took = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    assert took < 2 + 3, took                      # the run is 2 s, plus start-up
    assert "warning: the prober could not keep 20000/s" in proc.stderr
    out = json.loads(run_cli("--config", str(four), "probe", "--rate", "300", "--duration",
                             "2", "--json", timeout=60).stdout)
    sched = out["schedule"]
    assert sched["slipped"] is False and abs(sched["sent"] - 600) <= 6
    assert sched["due"] == 600 and out["failed"] == 0
    assert len(out["by_backend"]) == 4


def test_flows_stay_up_while_nothing_changes(four):
    out = json.loads(run_cli("--config", str(four), "probe", "--rate", "50", "--duration",
                             "4", "--flows", "200", "--flow-interval", "0.5", "--json",
                             timeout=60).stdout)
    f = out["flows"]
    assert f["opened"] == 200 and f["broken"] == 0 and f["moved"] == 0


def test_removing_and_adding_a_node_breaks_bystander_flows_on_a_hash_router(four, tmp_path):
    report = tmp_path / "report.md"
    proc = run_cli("--config", str(four), "drill", "--scenario", "remove-node", "--scenario",
                   "add-node", "--flows", "300", "--node", "fnode4", "--json", "--report",
                   str(report), timeout=300)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    results = {r["name"]: r for r in json.loads(proc.stdout)["scenarios"]}
    remove, add = results["remove-node"]["flows"], results["add-node"]["flows"]
    # the removed node's own flows all break...
    assert remove["on_node"] > 30 and remove["affected"] == remove["on_node"]
    # ...and, hash-threshold, a share of the others' too: (N-2)/(2(N-1)) = 0.33 for an edge
    # next hop of 4, 0.11 for a middle one
    share = remove["bystanders"] / (remove["flows"] - remove["on_node"])
    assert 0.05 <= share <= 0.6, remove
    # adding a node moves about half of all flows (none were on the new node)
    assert add["on_node"] == 0 and add["bystanders"] / add["flows"] > 0.2, add
    assert "Long-lived flows" in report.read_text()
    assert "remove-node" in report.read_text()
