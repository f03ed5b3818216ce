"""The node health check on the real lab: it withdraws by itself, never flaps faster than
rise/fall allow, withdraws on a clean shutdown, and shows in status."""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any

import pytest

from conftest import Deployed, machine_of, on_node, run_cli, status, wait_for
from ecmptui import config
from ecmptui.lab.instance import LabInstance
from ecmptui.node import health as node_health
from ecmptui.targets import open_deployment

pytestmark = pytest.mark.lab

FLAP_RULES = """table inet ecmptui_test_flap {
  chain input { type filter hook input priority -300;
                tcp dport 80 iifname "lo" reject with tcp reset; }
}
"""


def test_status_shows_each_nodes_health(deployed: Deployed) -> None:
    cfg, _ = deployed
    for n in status(cfg)["nodes"]:
        h = n["health"]
        assert h["state"] == "up" and h["alive"] is True
        assert h["interval_ms"] == 100 and h["rise"] == 3 and h["fall"] == 3


def _transitions(log: str, since: float) -> list[tuple[float, str]]:
    out = []
    for line in log.splitlines():
        m = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) (UP|DOWN) ", line)
        if m:
            t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
            if t >= since:
                out.append((t, m.group(2)))
    return out


def _flap(machine: Any, period: float, seconds: float) -> None:
    """The service goes down and up every `period` s (as the check sees it)."""
    deadline = time.monotonic() + seconds
    down = False
    try:
        while time.monotonic() < deadline:
            if not down:
                machine.run("nft", "-f", "-", input=FLAP_RULES)
            else:
                machine.run("nft", "delete", "table", "inet", "ecmptui_test_flap")
            down = not down
            time.sleep(period)
    finally:
        machine.run("nft", "delete", "table", "inet", "ecmptui_test_flap", check=False)


def test_flapping_service_does_not_flap_the_route(
    lab_instance: LabInstance, deployed: Deployed
) -> None:
    cfg, _ = deployed
    rec = open_deployment(config.load(cfg)).inventory().node("tnode1")
    machine = machine_of(lab_instance, rec)
    log = "/var/lib/ecmptui/health.log"
    fast_start = time.time()
    _flap(machine, 0.1, 3.0)  # faster than fall x interval: no transition may follow each
    slow_start = time.time()
    _flap(machine, 0.6, 3.0)  # slow enough that the check must see it
    fast = _transitions(machine.get(log) or "", fast_start)
    fast = [c for c in fast if c[0] < slow_start]
    slow = _transitions(machine.get(log) or "", slow_start)
    assert len(slow) >= 2, slow  # the check did see the service go down and up
    for changes in (fast, slow):
        gaps = [b[0] - a[0] for a, b in zip(changes, changes[1:], strict=False)]
        # never faster than rise/fall allow: 3 checks x 100 ms between two transitions
        assert all(g >= 0.28 for g in gaps), (changes, gaps)
    assert len(fast) <= 3.0 / 0.3
    assert wait_for(lambda: status(cfg)["nodes"][0]["health"]["state"] == "up")
    assert wait_for(lambda: len(status(cfg)["router"]["nexthops"]) == 2)


def test_clean_shutdown_withdraws_and_restart_announces(deployed: Deployed) -> None:
    cfg, _ = deployed

    async def stop(node: Any) -> None:  # an operator's `systemctl stop`: SIGTERM to the checker
        await node.systemctl("stop", node_health.HEALTH_UNIT)

    on_node(cfg, "tnode2", stop)
    try:
        st = wait_for(lambda: (s := status(cfg))["router"]["nodes"] == ["tnode1"] and s)
        assert st, "the checker's clean shutdown did not withdraw tnode2"
        assert st["nodes"][1]["health"]["state"] == "stopped"
        assert st["nodes"][1]["bgp_state"] == "Established"
    finally:
        on_node(cfg, "tnode2", node_health.start_health)
        run_cli("--config", str(cfg), "node", "announce", "tnode2", check=True)
    assert wait_for(lambda: len(status(cfg)["router"]["nexthops"]) == 2)
    assert status(cfg)["nodes"][1]["health"]["state"] == "up"


def test_a_bird_reload_does_not_re_announce_a_failed_node(deployed: Deployed) -> None:
    """`birdc configure` with a changed file re-enables a protocol disabled from the CLI;
    the check must withdraw the failed node again by itself."""
    cfg, _ = deployed

    async def reload_with_changed_config(node: Any) -> Any:
        text = await node.read(node.layout.bird_conf)
        await node.write(
            node.layout.bird_conf, text + "# touched by a test\n", "0640", dir_group=True
        )
        out = await node.run("birdc", "-s", node.layout.bird_socket, "configure")
        await node.write(node.layout.bird_conf, text, "0640", dir_group=True)
        return out.stdout

    run_cli("--config", str(cfg), "node", "fault", "tnode1", "stop-nginx", check=True)
    try:
        assert wait_for(lambda: status(cfg)["router"]["nodes"] == ["tnode2"])
        assert "Reconfigured" in on_node(cfg, "tnode1", reload_with_changed_config)
        time.sleep(2.5)  # the check re-asserts once a second while the node is down
        st = status(cfg)
        assert st["router"]["nodes"] == ["tnode2"], st["router"]
        assert st["nodes"][0]["health"]["state"] == "down"
    finally:
        run_cli("--config", str(cfg), "node", "restore", "tnode1", check=True)
    assert wait_for(lambda: len(status(cfg)["router"]["nexthops"]) == 2)
