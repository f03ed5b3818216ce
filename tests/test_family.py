"""Address families without a lab: parsing, URLs, the inventory's and the status's view of
a dual-stack deployment, and how the CLI and screens word it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecmptui import config
from ecmptui.deployment.records import Inventory, NodeRecord
from ecmptui.deployment.status import (
    CoreView,
    DeploymentStatus,
    NodeStatus,
    PeerStatus,
    RouterStatus,
)
from ecmptui.display import grid_cells, grid_columns, router_lines
from ecmptui.errors import EcmpError
from ecmptui.family import (
    Family,
    host_prefix,
    parse_families,
    url_family,
    url_host,
)
from ecmptui.targets import open_deployment
from ecmptui.traffic.drill import ScenarioResult, report_markdown

EIP, EIP6 = "203.0.113.10", "2001:db8:ec:1ff::10"


def test_families_parse_and_print() -> None:
    assert parse_families("dual") == (Family.IPV4, Family.IPV6)
    assert parse_families(" IPv6 ") == (Family.IPV6,)
    with pytest.raises(EcmpError, match="expected one of ipv4, ipv6, dual"):
        parse_families("both")
    assert Family.parse("6") is Family.parse("ipv6") is Family.IPV6
    with pytest.raises(EcmpError, match="expected ipv4 or ipv6"):
        Family.parse("ipv5")


def test_addresses_as_prefixes_and_url_hosts() -> None:
    assert host_prefix(EIP) == "203.0.113.10/32" and host_prefix(EIP6) == f"{EIP6}/128"
    assert url_host(EIP) == EIP and url_host(EIP6) == f"[{EIP6}]"
    assert url_family(f"http://[{EIP6}]:8080/x") is Family.IPV6
    assert url_family(f"http://{EIP}/") is Family.IPV4
    assert url_family("https://anycast.example/") is None
    for bad in ("http://[2001:db8::1/", "http://[203.0.113.1]/", "http://[nope]/", "http:///"):
        with pytest.raises(EcmpError):
            url_family(bad)


def test_an_inventory_says_its_families_and_refuses_one_it_lacks() -> None:
    dual = Inventory("lab", EIP, "a", [], EIP6, "b")
    assert dual.families == (Family.IPV4, Family.IPV6)
    assert dual.eip_for(Family.IPV6) == EIP6
    assert dual.to_json()["eip6"] == EIP6
    v4 = Inventory("lab", EIP, "a", [])
    assert "eip6" not in v4.to_json()
    with pytest.raises(EcmpError, match="no ipv6 EIP \\(it serves: ipv4\\)"):
        v4.eip_for(Family.IPV6)
    rec = NodeRecord("n1", 1, "d", "m", "198.18.11.2", "198.18.11.1", "active", [], "x", "g6")
    assert rec.gateway_for(Family.IPV6) == "g6" and rec.gateway_for(Family.IPV4) == "198.18.11.1"


def test_a_static_target_lists_one_eip_per_family(tmp_path: Path) -> None:
    cfg = tmp_path / "static.toml"
    cfg.write_text(
        'target = "static"\n[static]\n'
        'eips = ["2001:DB8:EC:1FF:0:0:0:10", "203.0.113.10"]\n'
        '[[static.nodes]]\nname = "n1"\nhost = "127.0.0.1"\n'
    )
    d = open_deployment(config.load(cfg, env={}))
    inv = d.inventory()
    assert (inv.eip, inv.eip6) == (EIP, EIP6)  # any spelling, one per family
    url, _ = d.probe_target(inv, Family.IPV6)
    assert url == f"http://[{EIP6}]/"
    assert d.probe_target(inv)[0] == f"http://[{EIP6}]/"  # the first listed is the default


def _peer(neighbor: str, state: str = "Established", family: int = 4) -> PeerStatus:
    return PeerStatus("p", state, "", neighbor, 0, 1, "3", None, family)


def _dual_status() -> DeploymentStatus:
    peers = [
        _peer("169.254.255.1"),
        _peer("169.254.255.2"),
        _peer("fc00::e", family=6),
        _peer("fc00::f", "Active", family=6),
    ]
    node = NodeStatus("n1", 1, "d", "m", bgp_state="Established", peers=peers)
    cores = [
        CoreView("core1", "169.254.255.1", "running", ["n1"], ["n1"], "fc00::e"),
        CoreView("core2", "169.254.255.2", "running", ["n1"], [], "fc00::f"),
    ]
    router = RouterStatus(["198.18.11.2"], ["n1"], cores, nexthops6=[], nodes6=[])
    return DeploymentStatus("lab", EIP, [node], router, eip6=EIP6)


def test_the_grid_has_a_column_per_router_and_family() -> None:
    st = _dual_status()
    cols = grid_columns(st)
    assert [k for k, _ in cols] == ["core1 v4", "core1 v6", "core2 v4", "core2 v6"]
    cells = grid_cells(st.nodes[0], st)
    assert "Established" in cells["core2 v4"] and "Active" in cells["core2 v6"]
    # eight nodes fit 80 columns: the node name and four cells of "Established"
    assert len("ecmp-node8") + 4 * (len("Established") + 2) + 2 < 80
    lines = router_lines(st)
    assert lines[0].startswith(f"IPv4 EIP [b]{EIP}") and "198.18.11.2 (n1)" in lines[0]
    assert lines[1].startswith(f"IPv6 EIP [b]{EIP6}") and "[red]none[/]" in lines[1]


def test_a_single_family_keeps_the_plain_grid() -> None:
    st = _dual_status()
    st.eip6 = None
    assert [k for k, _ in grid_columns(st)] == ["core1", "core2"]
    assert router_lines(st)[0].startswith(f"EIP [b]{EIP}")


def test_the_fabric_problem_names_the_family_it_is_in() -> None:
    st = _dual_status()
    st.nodes[0].peers[2] = _peer("fc00::e", family=6)  # exports to core1 over IPv6
    assert st.fabric_problems(4) == []
    (problem,) = st.fabric_problems(6)
    assert "does not forward to n1" in problem and "IPv6 EIP" in problem
    again = DeploymentStatus.from_json(st.to_json())
    assert again.eip6 == EIP6 and again.nodes[0].peers[2].family == 6
    assert again.router is not None and again.router.cores[0].bgp_address6 == "fc00::e"


def test_a_report_of_both_families_names_each_scenarios_family() -> None:
    rows = [
        ScenarioResult("withdraw", False, None, "n2", 0, None, 5, {}, {}, {}, True, 200),
        ScenarioResult("withdraw", False, None, "n2", 0, None, 6, {}, {}, {}, True, 200, family=6),
    ]
    text = report_markdown(rows, 200, "lab")
    assert "probing the IPv4 and IPv6 EIP" in text
    assert "| withdraw (IPv4) |" in text and "| withdraw (IPv6) |" in text
    single = report_markdown(rows[1:], 200, "lab")
    assert "probing the IPv6 EIP" in single and "| withdraw |" in single


def test_an_ipv6_only_deployment_is_seen_through_its_ipv6_sessions() -> None:
    st = _dual_status()
    st.eip = None  # provisioned with --family ipv6
    assert st.first_eip == EIP6 and list(st.eips) == [6]
    assert [k for k, _ in grid_columns(st)] == ["core1", "core2"]
    cells = grid_cells(st.nodes[0], st)  # the IPv6 sessions, to fc00::e and fc00::f
    assert "Established" in cells["core1"] and "Active" in cells["core2"]
    assert router_lines(st)[0].startswith(f"EIP [b]{EIP6}")


async def test_an_action_narrowed_to_a_family_says_so() -> None:
    from ecmptui.actions import ACTIONS

    class Recorder:  # what a Node's family-aware methods were asked
        def __init__(self) -> None:
            self.calls: list[tuple[str, Family | None]] = []

        def __getattr__(self, name: str) -> object:
            async def step(family: Family | None = None) -> None:
                self.calls.append((name, family))

            return step

    node = Recorder()
    withdraw, shutdown = ACTIONS["withdraw"], ACTIONS["shutdown"]
    assert withdraw.run is not None and withdraw.run_family is not None
    assert await withdraw.run(node) == "stopped announcing the EIP (BGP session stays up)"  # type: ignore[arg-type]
    said = await withdraw.run_family(node, Family.IPV6)  # type: ignore[arg-type]
    assert said == "stopped announcing the IPv6 EIP (BGP session stays up)"
    assert shutdown.run_family is not None
    said = await shutdown.run_family(node, Family.IPV4)  # type: ignore[arg-type]
    assert said == "the IPv4 BGP session(s) shut down"
    assert node.calls == [("withdraw", None), ("withdraw", Family.IPV6), ("shutdown", Family.IPV4)]
    assert ACTIONS["kill-bird"].run_family is None  # a fault takes the whole node
