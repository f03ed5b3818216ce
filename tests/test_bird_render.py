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
            router_id=nb.customer_ip, eip="203.0.113.46", neighbor=nb, gateway="10.99.182.128"
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
            router_id="198.18.11.2", eip="203.0.113.10", neighbor=nb, bfd=True, announce=False
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
                router_id="10.0.0.1", eip="203.0.113.46", neighbor=nb, gateway="10.0.0.0"
            )
        )


def test_multihop_without_gateway_is_refused() -> None:
    nb = bird.Neighbor.from_api(METAL_NEIGHBOR)
    with pytest.raises(ValueError, match="gateway"):
        bird.render_node_config(
            bird.NodeBgpSpec(router_id="10.0.0.1", eip="203.0.113.46", neighbor=nb)
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
            eip="203.0.113.46",
            neighbor=nb,
            gateway="10.99.182.128",
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
