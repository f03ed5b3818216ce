"""FRR node configs: rendering, checked by the real `vtysh --dryrun` (the lab image's FRR),
and reading `vtysh ... json` as FRR 8.4 prints it."""

import json
import subprocess
from pathlib import Path

import pytest

from ecmptui.family import Family
from ecmptui.node import bird, frr
from test_bird_render import METAL_NEIGHBOR, METAL_NEIGHBOR6


def _vtysh() -> list[str]:
    """The lab image's vtysh, run with the image's own libraries (no root, no FRR on the
    host needed)."""
    from ecmptui.lab import image

    img = image.image("server")
    if not img.ready():
        pytest.skip("no FRR to check configs with: build the lab image (ecmptui lab image)")
    root = img.rootfs
    libs = ":".join(
        f"{root}/{d}"
        for d in (
            "lib/x86_64-linux-gnu",
            "usr/lib/x86_64-linux-gnu",
            "usr/lib/x86_64-linux-gnu/frr",
        )
    )
    return [f"{root}/lib64/ld-linux-x86-64.so.2", "--library-path", libs, f"{root}/usr/bin/vtysh"]


def frr_accepts(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    path = tmp_path / "frr.conf"
    path.write_text(text)
    return subprocess.run([*_vtysh(), "--dryrun", "-f", str(path)], capture_output=True, text=True)


def spec(
    bfd: bool = False, announce: bool = True, withdrawn: frozenset[Family] = frozenset()
) -> bird.NodeBgpSpec:
    nb4 = bird.Neighbor.from_api(METAL_NEIGHBOR)
    nb6 = bird.Neighbor.from_api(METAL_NEIGHBOR6)
    return bird.NodeBgpSpec(
        router_id=nb4.customer_ip,
        families=(
            bird.FamilyBgp("203.0.113.46", nb4, "10.99.182.128"),
            bird.FamilyBgp("2001:db8:ec:1ff::10", nb6, "2001:db8:ec:100::2"),
        ),
        bfd=bfd,
        announce=announce,
        withdrawn_families=withdrawn,
    )


def test_dual_stack_with_md5_and_bfd_is_accepted_by_frr(tmp_path: Path) -> None:
    text = frr.render_node_config(spec(bfd=True), "ecmp-node1")
    for line in (
        "router bgp 65000",
        " bgp router-id 10.99.182.129",
        "ip route 169.254.255.1/32 10.99.182.128",
        "ipv6 route fc00::f/128 2001:db8:ec:100::2",
        " neighbor metal ebgp-multihop 255",
        " neighbor metal password s3cretPW",
        " neighbor metal bfd profile ecmptui",
        " neighbor metal update-source 10.99.182.129",
        " neighbor metal6 update-source 2001:db8:ec:100::3",
        " neighbor fc00::e peer-group metal6",
        "  network 203.0.113.46/32",
        "  network 2001:db8:ec:1ff::10/128",
        "  receive-interval 100",
        "no ip forwarding",
        " bgp graceful-restart-disable",
    ):
        assert line + "\n" in text, line
    proc = frr_accepts(tmp_path, text)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_frr_rejects_a_bad_value_and_says_where(tmp_path: Path) -> None:
    text = frr.render_node_config(spec(), "ecmp-node1").replace(
        "timers bgp 1 3", "timers bgp 1 99999"
    )
    proc = frr_accepts(tmp_path, text)
    assert proc.returncode != 0
    complaint = frr.dryrun_complaint(proc.stdout + proc.stderr)
    line = text.splitlines().index(" timers bgp 1 99999") + 1
    assert complaint == f"line {line}: % Unknown command[25]:  timers bgp 1 99999"


def test_withdrawn_renders_the_network_commented_out(tmp_path: Path) -> None:
    text = frr.render_node_config(spec(withdrawn=frozenset({Family.IPV6})), "n1")
    assert "  network 203.0.113.46/32\n" in text
    assert f"  {frr.WITHDRAWN_MARK}network 2001:db8:ec:1ff::10/128\n" in text
    assert frr_accepts(tmp_path, text).returncode == 0
    off = frr.render_node_config(spec(announce=False), "n1")
    assert frr.announced_networks(off) == []
    assert [f for f, _ in frr.all_networks(off)] == [Family.IPV4, Family.IPV6]


HAND_WRITTEN = """\
hostname edge-7
router bgp 64512
 neighbor 169.254.255.1 remote-as 65530
 neighbor 169.254.255.1 ebgp-multihop 2
 address-family ipv4 unicast
  network 203.0.113.46/32 route-map SET-COMMUNITY
  neighbor 169.254.255.1 route-map ANYCAST-OUT out
 exit-address-family
exit
"""


def test_a_hand_written_network_line_is_switched_with_its_route_map_kept() -> None:
    assert frr.has_network(HAND_WRITTEN, "203.0.113.46")
    assert not frr.has_network(HAND_WRITTEN, "203.0.113.4")
    off = frr.set_network(HAND_WRITTEN, "203.0.113.46", announce=False)
    assert f"  {frr.WITHDRAWN_MARK}network 203.0.113.46/32 route-map SET-COMMUNITY\n" in off
    assert frr.set_network(off, "203.0.113.46", announce=True) == HAND_WRITTEN
    assert frr.local_as(HAND_WRITTEN) == 64512
    argv = frr.network_argv(
        64512, Family.IPV4, "network 203.0.113.46/32 route-map SET-COMMUNITY", False
    )
    assert argv[-1] == "no network 203.0.113.46/32 route-map SET-COMMUNITY"
    assert "router bgp 64512" in argv


def test_a_password_frr_would_split_is_refused() -> None:
    nb = bird.Neighbor.from_api({**METAL_NEIGHBOR, "md5_password": "two words"})
    with pytest.raises(ValueError, match="FRR word"):
        frr.render_node_config(
            bird.NodeBgpSpec("10.0.0.1", (bird.FamilyBgp("203.0.113.46", nb, "10.0.0.2"),)), "n1"
        )


# `show bgp summary json` and `show bgp neighbors json` of FRR 8.4.4 (trimmed to what is read)
SUMMARY = {
    "ipv4Unicast": {
        "peers": {
            "169.254.255.1": {"state": "Established", "pfxRcd": 0, "pfxSnt": 1, "peerState": "OK"},
            "169.254.255.2": {
                "state": "Idle (Admin)",
                "pfxRcd": 0,
                "pfxSnt": 0,
                "peerState": "Admin",
            },
        }
    },
    "ipv6Unicast": {
        "peers": {"fc00::e": {"state": "Active", "pfxRcd": 0, "pfxSnt": 0, "peerState": "OK"}}
    },
}
NEIGHBORS = {
    "169.254.255.1": {
        "bgpState": "Established",
        "bgpTimerUpMsec": 4000,
        "bgpTimerHoldTimeMsecs": 3000,
        "bgpTimerLastRead": 1000,
    },
    "169.254.255.2": {
        "bgpState": "Idle",
        "lastResetDueTo": "Admin. shutdown",
        "lastResetTimerMsecs": 2500,
    },
    "fc00::e": {
        "bgpState": "Active",
        "lastResetDueTo": "BFD down received",
        "lastResetTimerMsecs": 500,
    },
}


def test_sessions_are_read_from_vtysh_json() -> None:
    now = 1_800_000_000.25
    sessions = frr.parse_sessions(json.dumps(SUMMARY), json.dumps(NEIGHBORS), now)
    by = {s.name: s for s in sessions}
    up = by["169.254.255.1"]
    assert up.established and up.family is Family.IPV4 and up.routes_exported == 1
    assert up.hold_timer == "2.000/3" and up.last_error is None
    assert up.since == frr.since_text(now - 4.0)
    admin = by["169.254.255.2"]
    assert admin.state == "Idle (Admin)" and admin.last_error == "Admin. shutdown"
    v6 = by["fc00::e"]
    assert v6.family is Family.IPV6 and v6.state == "Active"
    assert v6.last_error == "BFD down received" and v6.since == frr.since_text(now - 0.5)


def test_unreadable_vtysh_output_is_a_clear_error() -> None:
    with pytest.raises(frr.FrrParseError, match="not JSON: % Unknown command"):
        frr.parse_sessions("% Unknown command: show bgp summary json", "{}", 0.0)
    bfd = [{"peer": "169.254.255.1", "status": "up"}, {"peer": "fc00::e", "status": "down"}]
    assert frr.parse_bfd_peers(json.dumps(bfd)) == [("169.254.255.1", "Up"), ("fc00::e", "Down")]


def test_daemons_in_turn_and_detection_script() -> None:
    from ecmptui.node.daemon_names import daemon_of_node, parse_daemons
    from ecmptui.node.daemons import daemon_for, detect_script
    from ecmptui.node.layout import Layout

    turn = parse_daemons("BIRD, frr")
    assert turn == ("bird", "frr")
    assert [daemon_of_node(turn, i) for i in range(1, 6)] == ["bird", "frr", "bird", "frr", "bird"]
    assert [daemon_of_node(("frr",), i) for i in (1, 2)] == ["frr", "frr"]
    lay = Layout(frr_conf="/srv/frr.conf", frr_unit="frr-edge")
    assert daemon_for("frr", lay).conf_path == "/srv/frr.conf"
    assert daemon_for("frr", lay).unit == "frr-edge"
    assert daemon_for("bird", lay).conf_path == "/etc/bird/bird.conf"
    script = detect_script(lay)
    # what provisioning recorded first, then the unit that runs, then a BGP config
    assert script.index("/var/lib/ecmptui/daemon") < script.index("frr-edge")
    assert script.index("frr-edge") < script.index("/srv/frr.conf")
    assert script.endswith("echo bird")


def test_the_health_switch_follows_the_config_and_skips_nothing_else() -> None:
    from ecmptui.node.daemons import daemon_for
    from ecmptui.node.layout import Layout

    text = frr.render_node_config(spec(withdrawn=frozenset({Family.IPV6})), "n1")
    switch = daemon_for("frr", Layout()).health_switch(
        text, ["203.0.113.46", "2001:db8:ec:1ff::10"]
    )
    data = switch.to_json()
    assert [e["family"] for e in data["withdraw"]] == ["ipv4", "ipv6"]  # a withdrawn one too
    assert switch.withdraw[0][0][-1] == "no network 203.0.113.46/32"
    assert switch.announce[1][0][-1] == "network 2001:db8:ec:1ff::10/128"
    assert data["announce"][0]["argv"] == list(switch.announce[0][0])
    assert switch.announce[0][0][:3] == ("vtysh", "-d", "bgpd")
    other = daemon_for("frr", Layout()).health_switch(HAND_WRITTEN, ["203.0.113.99"])
    assert other.withdraw == () and other.announce == ()  # not the EIP: left alone
    bird_switch = daemon_for("bird", Layout()).health_switch("", ["203.0.113.46"]).to_json()
    assert bird_switch["withdraw"] == [
        {"argv": ["birdc", "-s", "/run/bird/bird.ctl", "disable", "eip"], "family": None}
    ]


def test_the_checker_runs_the_switch_and_keeps_a_family_the_operator_withdrew(
    tmp_path: Path,
) -> None:
    from ecmptui.node.healthcheck import Checker

    calls = tmp_path / "calls"

    def entry(word: str, family: str) -> dict:
        return {"argv": ["sh", "-c", f'echo {word} >> "{calls}"'], "family": family}

    (tmp_path / "withdrawn-families").write_text("ipv6\n")
    checker = Checker(
        {
            "switch": {
                "withdraw": [entry("w4", "ipv4"), entry("w6", "ipv6")],
                "announce": [entry("a4", "ipv4"), entry("a6", "ipv6")],
            },
            "withdrawn_families_file": str(tmp_path / "withdrawn-families"),
            "withdrawn_flag": str(tmp_path / "withdrawn"),
            "state_file": str(tmp_path / "health.json"),
            "log_file": str(tmp_path / "health.log"),
        }
    )
    checker.transition("down", "HTTP 502")
    checker.transition("up", "")
    assert calls.read_text().split() == ["w4", "w6", "a4"]  # IPv6 stays withdrawn
    assert "withdraw failed" not in (tmp_path / "health.log").read_text()
    checker.cfg["switch"]["withdraw"].append({"argv": ["false"], "family": None})
    assert checker.switch("withdraw") is False
    assert "withdraw failed" in (tmp_path / "health.log").read_text()


def test_a_drill_report_names_the_daemon_of_the_node_it_broke() -> None:
    from ecmptui.traffic.drill import ScenarioResult, report_markdown

    rows = [
        ScenarioResult(
            "kill-bird", True, True, "n2", 250, None, 5, {}, {}, {}, True, 200, daemon="frr"
        ),
        ScenarioResult("kill-bird", True, True, "n1", 240, None, 5, {}, {}, {}, True, 200),
    ]
    text = report_markdown(rows, 200, "lab")
    assert "| n2 (FRR) |" in text and "| n1 |" in text
    assert rows[0].to_json()["daemon"] == "frr"


def test_reload_leftovers_are_read_from_frr_reload_test() -> None:
    out = (
        "\nLines To Delete\n===============\nno bfd\nrouter bgp 65000\n no neighbor metal bfd\n"
        "\nLines To Add\n============\nrouter bgp 65000\n neighbor metal bfd\n"
    )
    left = frr.reload_leftovers(out)
    assert left[:3] == ["no bfd", "router bgp 65000", "no neighbor metal bfd"]
    assert "neighbor metal bfd" in left
    assert frr.reload_leftovers("") == []


def test_bfd_is_read_from_the_neighbors_of_a_config() -> None:
    from ecmptui.node.daemons import daemon_for
    from ecmptui.node.layout import Layout

    frr_daemon = daemon_for("frr", Layout())
    assert frr_daemon.bfd_on(frr.render_node_config(spec(bfd=True), "n1"))
    assert not frr_daemon.bfd_on(frr.render_node_config(spec(bfd=False), "n1"))
    assert not frr_daemon.bfd_on(HAND_WRITTEN)
