"""Pinned host keys follow the servers they belong to (no lab)."""

from __future__ import annotations

from pathlib import Path

from ecmptui.node.server import _pinned, forget_pinned


def test_a_deleted_servers_pinned_key_is_forgotten_and_the_others_kept(tmp_path: Path) -> None:
    """Regression (issue 22): after deprovision + provision on the metal target the new
    servers were refused, because the deleted ones' pinned keys were still recorded."""
    known = tmp_path / "known_hosts"
    known.write_text(
        "198.51.100.1 ssh-ed25519 AAAAone\n"
        "198.51.100.10 ssh-ed25519 AAAAten\n"
        "[198.51.100.1]:2222 ssh-ed25519 AAAAport\n"
    )
    assert forget_pinned(known, "198.51.100.1") is True
    assert _pinned(known, "198.51.100.1") == []
    assert _pinned(known, "198.51.100.10") == ["ssh-ed25519 AAAAten"]  # a prefix is not a match
    assert _pinned(known, "[198.51.100.1]:2222") == ["ssh-ed25519 AAAAport"]
    assert forget_pinned(known, "198.51.100.1") is False  # nothing left to forget
    assert forget_pinned(tmp_path / "missing", "198.51.100.1") is False
