"""Node config rendering, checked by the real `bird -p`."""

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ecmptui.node import bird

METAL_NEIGHBOR = {  # the shape Metal's devices/{id}/bgp/neighbors returned
    "address_family": 4,
    "customer_as": 65000,
    "customer_ip": "10.99.182.129",
    "md5_enabled": True,
    "md5_password": "s3cretPW",
    "multihop": True,
    "peer_as": 65530,
    "peer_ips": ["169.254.255.1", "169.254.255.2"],
    "routes_in": [{"route": "203.0.113.46/32", "exact": True}],
    "routes_out": [],
}


def _bird() -> list[str]:
    """The real BIRD 2: the lab image's, run with the image's own libraries (the host need
    not have BIRD; no root needed), else the host's."""
    from ecmptui.lab import image

    root = image.image("server").rootfs
    if image.image("server").ready():
        libs = f"{root}/lib/x86_64-linux-gnu:{root}/usr/lib/x86_64-linux-gnu"
        return [
            f"{root}/lib64/ld-linux-x86-64.so.2",
            "--library-path",
            libs,
            f"{root}/usr/sbin/bird",
        ]
    found = shutil.which("bird")
    if found is None:
        pytest.skip("no BIRD to check configs with: build the lab image (ecmptui lab image)")
    return [found]


def bird_accepts(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    path = tmp_path / "bird.conf"
    path.write_text(text)
    return subprocess.run([*_bird(), "-p", "-c", str(path)], capture_output=True, text=True)


def test_real_metal_shape_two_multihop_peers_with_md5(tmp_path: Path) -> None:
    nb = bird.Neighbor.from_api(METAL_NEIGHBOR)
    text = bird.render_node_config(
        bird.NodeBgpSpec(
            router_id=nb.customer_ip,
            families=(bird.FamilyBgp("203.0.113.46", nb, "10.99.182.128"),),
        )
    )
    assert "router id 10.99.182.129;" in text
    assert "route 169.254.255.1/32 via 10.99.182.128;" in text
    assert "route 169.254.255.2/32 via 10.99.182.128;" in text
    assert "multihop 5;" in text and "direct;" not in text
    assert 'password "s3cretPW";' in text
    assert "protocol bgp peer1 from metal { neighbor 169.254.255.1 as 65530; }" in text
    assert "protocol bgp peer2 from metal { neighbor 169.254.255.2 as 65530; }" in text
    assert "if net = 203.0.113.46/32 then accept;" in text and "bfd on" not in text
    assert "local 10.99.182.129 as 65000;" in text
    proc = bird_accepts(tmp_path, text)
    assert proc.returncode == 0, proc.stderr


def test_lab_shape_direct_with_bfd_and_withdrawn(tmp_path: Path) -> None:
    nb = bird.Neighbor.from_api(
        {
            **METAL_NEIGHBOR,
            "multihop": False,
            "md5_enabled": False,
            "customer_ip": "198.18.11.2",
            "peer_ips": ["198.18.11.1"],
        }
    )
    text = bird.render_node_config(
        bird.NodeBgpSpec(
            router_id="198.18.11.2",
            families=(bird.FamilyBgp("203.0.113.10", nb),),
            bfd=True,
            announce=False,
        )
    )
    assert "direct;" in text and "static" not in text and "password" not in text
    assert "bfd on;" in text and "protocol bfd" in text
    assert "disabled yes;" in text
    assert bird_accepts(tmp_path, text).returncode == 0


def test_md5_password_not_used_when_disabled() -> None:
    nb = bird.Neighbor.from_api({**METAL_NEIGHBOR, "md5_enabled": False})
    assert nb.md5_password is None


def test_unsafe_password_is_refused() -> None:
    nb = bird.Neighbor.from_api({**METAL_NEIGHBOR, "md5_password": 'x"; } protocol evil {'})
    with pytest.raises(ValueError):
        bird.render_node_config(
            bird.NodeBgpSpec(
                router_id="10.0.0.1", families=(bird.FamilyBgp("203.0.113.46", nb, "10.0.0.0"),)
            )
        )


def test_multihop_without_gateway_is_refused() -> None:
    nb = bird.Neighbor.from_api(METAL_NEIGHBOR)
    with pytest.raises(ValueError, match="gateway"):
        bird.render_node_config(
            bird.NodeBgpSpec(router_id="10.0.0.1", families=(bird.FamilyBgp("203.0.113.46", nb),))
        )


@pytest.mark.parametrize(
    "bad",
    [
        {"customer_ip": "10.0.0.300"},
        {"peer_ips": "x"},
        {"customer_as": "AS65000"},
        {"peer_as": None},
    ],
)
def test_malformed_neighbor_is_a_parse_error(bad: Any) -> None:
    with pytest.raises(bird.BirdParseError):
        bird.Neighbor.from_api({**METAL_NEIGHBOR, **bad})


def test_real_metal_shape_with_bfd_uses_multihop_bfd(tmp_path: Path) -> None:
    nb = bird.Neighbor.from_api(METAL_NEIGHBOR)
    text = bird.render_node_config(
        bird.NodeBgpSpec(
            router_id=nb.customer_ip,
            families=(bird.FamilyBgp("203.0.113.46", nb, "10.99.182.128"),),
            bfd=True,
        )
    )
    assert "bfd on;" in text and "  multihop {" in text  # BFD timers for multihop sessions
    proc = bird_accepts(tmp_path, text)
    assert proc.returncode == 0, proc.stderr


def test_lab_router_configs_are_accepted_by_bird(tmp_path: Path) -> None:
    from ecmptui.lab.router import RouterPeer, render_core_config, render_fabric_config

    peers = [RouterPeer(1, 65000), RouterPeer(2, 65000, "s3cretPW")]
    core = render_core_config("core1", peers, ["203.0.113.10"])
    assert "add paths tx;" in core and "next hop keep;" in core
    assert "local 169.254.255.1 as 65530;" in core and 'password "s3cretPW";' in core
    fabric = render_fabric_config(["203.0.113.10"])
    assert "add paths rx;" in fabric and "merge paths on;" in fabric
    for text in (core, fabric, render_core_config("core2", [], [])):
        proc = bird_accepts(tmp_path, text)
        assert proc.returncode == 0, (proc.stderr, text)


METAL_NEIGHBOR6 = {  # Metal's IPv6 record: peers written out in full, the project's /56
    "address_family": 6,
    "customer_as": 65000,
    "customer_ip": "2001:db8:ec:100::3",
    "md5_enabled": True,
    "md5_password": "s3cretPW",
    "multihop": True,
    "peer_as": 65530,
    "peer_ips": [
        "fc00:0000:0000:0000:0000:0000:0000:000e",
        "fc00:0000:0000:0000:0000:0000:0000:000f",
    ],
    "routes_in": [{"route": "2001:db8:ec:100::/56", "exact": False}],
    "routes_out": [],
}


def test_ipv6_neighbor_in_the_long_form_is_read_in_any_spelling() -> None:
    nb = bird.Neighbor.from_api(METAL_NEIGHBOR6)
    assert nb.peer_ips == ("fc00::e", "fc00::f")
    assert nb.family.value == 6
    short = bird.Neighbor.from_api({**METAL_NEIGHBOR6, "peer_ips": ["FC00::E", "fc00:0:0::f"]})
    assert short == nb


def test_neighbor_whose_family_contradicts_its_addresses_is_a_parse_error() -> None:
    with pytest.raises(bird.BirdParseError, match="address_family"):
        bird.Neighbor.from_api({**METAL_NEIGHBOR6, "address_family": 4})
    with pytest.raises(bird.BirdParseError, match="address_family"):
        bird.Neighbor.from_api({**METAL_NEIGHBOR, "peer_ips": ["fc00::e"]})


def test_dual_stack_config_has_both_families_and_one_eip_switch(tmp_path: Path) -> None:
    nb4, nb6 = bird.Neighbor.from_api(METAL_NEIGHBOR), bird.Neighbor.from_api(METAL_NEIGHBOR6)
    v4 = bird.FamilyBgp("203.0.113.46", nb4, "10.99.182.128")
    v6 = bird.FamilyBgp("2001:db8:ec:1ff::10", nb6, "2001:db8:ec:100::2")
    text = bird.render_node_config(
        bird.NodeBgpSpec(router_id=nb4.customer_ip, families=(v6, v4), bfd=True)
    )
    # one EIP protocol with both channels: a withdraw (and the health check) takes both
    assert text.count("protocol direct eip {") == 1
    assert '  ipv4;\n  ipv6;\n  interface "lo";' in text
    assert "route fc00::e/128 via 2001:db8:ec:100::2;" in text
    assert "if net = 2001:db8:ec:1ff::10/128 then accept;" in text
    assert "local 2001:db8:ec:100::3 as 65000;" in text
    assert "protocol bgp peer1_v6 from metal6 { neighbor fc00::e as 65530; }" in text
    assert "protocol bgp peer1 from metal { neighbor 169.254.255.1 as 65530; }" in text
    assert text.count("protocol bfd") == 1
    assert [bird.peer_family(p).value for p in ("peer1", "peer2_v6")] == [4, 6]
    proc = bird_accepts(tmp_path, text)
    assert proc.returncode == 0, proc.stderr


def test_family_mismatch_between_eip_and_neighbor_is_refused() -> None:
    nb4 = bird.Neighbor.from_api(METAL_NEIGHBOR)
    with pytest.raises(ValueError, match="family"):
        bird.render_node_config(
            bird.NodeBgpSpec(
                router_id="10.0.0.1", families=(bird.FamilyBgp("2001:db8::1", nb4, "10.0.0.0"),)
            )
        )


def test_a_family_withdrawn_alone_rejects_its_eip_and_comes_back(tmp_path: Path) -> None:
    nb4, nb6 = bird.Neighbor.from_api(METAL_NEIGHBOR), bird.Neighbor.from_api(METAL_NEIGHBOR6)
    v4 = bird.FamilyBgp("203.0.113.46", nb4, "10.99.182.128")
    v6 = bird.FamilyBgp("2001:db8:ec:1ff::10", nb6, "2001:db8:ec:100::2")
    Fam = type(v6.family)
    both = bird.render_node_config(bird.NodeBgpSpec(nb4.customer_ip, (v4, v6)))
    only4 = bird.render_node_config(
        bird.NodeBgpSpec(nb4.customer_ip, (v4, v6), withdrawn_families=frozenset({Fam.IPV6}))
    )
    assert "  # withdrawn by the operator: if net = 2001:db8:ec:1ff::10/128" in only4
    assert "  if net = 203.0.113.46/32 then accept;" in only4
    assert "disabled no;" in only4  # the EIP protocol stays on: IPv4 is announced
    assert bird_accepts(tmp_path, only4).returncode == 0
    # what `node withdraw/announce --family` does to a running config, both ways
    assert bird.set_family_export(both, "2001:db8:ec:1ff::10", announce=False) == only4
    assert bird.set_family_export(only4, "2001:db8:ec:1ff::10", announce=True) == both
    assert bird.set_family_export(both, "2001:db8:ec:1ff::10", announce=True) == both
    # a config ecmptui did not render cannot be narrowed: the node refuses, notes nothing
    assert bird.has_family_export(both, "2001:db8:ec:1ff::10")
    assert bird.has_family_export(only4, "2001:db8:ec:1ff::10")
    hand = both.replace("  if net = 2001:db8:ec:1ff::10/128 then accept;", "  accept;")
    assert not bird.has_family_export(hand, "2001:db8:ec:1ff::10")
