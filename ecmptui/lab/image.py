"""Debian 12 root filesystems for lab machines, built once from Debian's packages and cached.

Two images, each cached under a directory named by a hash of its recipe (change the recipe and
the next `lab up` builds a new one; old ones can be removed by hand):
- `server`: what provisioning expects to find on a prepared server (BIRD 2, FRR, nginx, nftables
  installed but not configured or enabled; apt-cacher-ng for the lab's package proxy);
- `plain`: a fresh Metal-like server (systemd, sshd, python3, iproute2): provisioning has to
  install BIRD and nginx itself.

An image is built with debootstrap into a temporary directory and renamed into place only when
complete, so an interrupted build leaves no half image behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ecmptui.errors import EcmpError
from ecmptui.jsonish import JsonObject

IMAGE_ROOT = Path(os.environ.get("ECMPTUI_IMAGE_ROOT", "/var/cache/ecmptui/images"))
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
BUILD_TIMEOUT = 900.0  # one bound on the whole debootstrap run

_BASE = ["systemd", "systemd-sysv", "openssh-server", "python3", "iproute2", "procps"]
PACKAGES = {
    "plain": _BASE,
    "server": _BASE
    + ["nftables", "bird2", "frr", "frr-pythontools", "nginx-light", "apt-cacher-ng"],
}
# Units a server in a container does not need (no consoles, no logins to track, no timers
# that would wake 16 machines at once); masked in the image.
MASKED_UNITS = [
    "getty.target",
    "console-getty.service",
    "getty@tty1.service",
    "serial-getty@.service",
    "systemd-logind.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "dpkg-db-backup.timer",
    "systemd-tmpfiles-clean.timer",
    "systemd-journal-flush.service",
    "systemd-update-utmp.service",
    "systemd-update-utmp-runlevel.service",
    "sys-kernel-config.mount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "sys-fs-fuse-connections.mount",
    "dev-hugepages.mount",
    "dev-mqueue.mount",
    "systemd-remount-fs.service",
    "systemd-sysctl.service",
]
JOURNALD_CONF = "[Journal]\nStorage=volatile\nRuntimeMaxUse=8M\nForwardToConsole=no\n"
# debootstrap's progress lines ("I: ...") that start a new stage
_STAGES = [
    ("Retrieving InRelease", "reaching the mirror"),
    ("Resolving dependencies", "resolving packages"),
    ("Extracting", "unpacking"),
    ("Installing core", "installing the core"),
    ("Unpacking the base", "unpacking the rest"),
    ("Configuring the base", "configuring"),
    ("Base system installed", "base system installed"),
]
_EVERY = 25  # report the download every this many packages

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Image:
    """One cached image: `rootfs` is what machines mount read-only as their lower layer."""

    os: str
    key: str
    path: Path

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs"

    @property
    def manifest(self) -> Path:
        return self.path / "image.json"

    def ready(self) -> bool:
        return self.manifest.is_file() and (self.rootfs / "sbin" / "init").exists()

    def to_json(self) -> JsonObject:
        data = {"os": self.os, "key": self.key, "path": str(self.path), "ready": self.ready()}
        if self.ready():
            data.update(json.loads(self.manifest.read_text()))
        return data


def recipe(os_name: str) -> JsonObject:
    """Everything that decides an image's content (its cache key is a hash of this)."""
    if os_name not in PACKAGES:
        raise EcmpError(f"unknown lab image {os_name!r} (one of {', '.join(PACKAGES)})")
    return {
        "version": 1,
        "suite": SUITE,
        "variant": "minbase",
        "packages": PACKAGES[os_name],
        "masked": MASKED_UNITS,
        "journald": JOURNALD_CONF,
        "disabled": [
            "bird.service",
            "frr.service",
            "nginx.service",
            "ssh.socket",
            "apt-cacher-ng.service",
        ],
    }


def image(os_name: str) -> Image:
    r = recipe(os_name)
    key = hashlib.sha256(json.dumps(r, sort_keys=True).encode()).hexdigest()[:12]
    return Image(os_name, key, IMAGE_ROOT / f"debian12-{os_name}-{key}")


def mirror() -> str:
    return os.environ.get("ECMPTUI_DEBIAN_MIRROR", DEFAULT_MIRROR)


def ensure(os_name: str, progress: Progress | None = None, rebuild: bool = False) -> Image:
    """The image for `os_name`, built first when missing (or when `rebuild`)."""
    img = image(os_name)
    if img.ready() and not rebuild:
        return img
    if os.geteuid() != 0:
        raise EcmpError("building a lab image needs root (debootstrap): run as root")
    if not shutil.which("debootstrap"):
        raise EcmpError("debootstrap not found: install the Debian package debootstrap")
    say = progress or (lambda _line: None)
    IMAGE_ROOT.mkdir(parents=True, exist_ok=True, mode=0o755)
    tmp = img.path.with_name(img.path.name + f".building-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    started = time.monotonic()
    try:
        _debootstrap(os_name, tmp / "rootfs", say)
        say("trimming for a container")
        _customize(os_name, tmp / "rootfs")
        size = _du(tmp / "rootfs")
        manifest = {
            "recipe": recipe(os_name),
            "mirror": mirror(),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "build_seconds": round(time.monotonic() - started, 1),
            "bytes": size,
        }
        (tmp / "image.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if img.path.exists() and rebuild:
            shutil.rmtree(img.path)
        try:
            tmp.rename(img.path)
        except OSError as exc:
            if not img.ready():  # else another build finished first: use that one
                raise EcmpError(f"cannot put the image in place at {img.path}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say(f"image {img.path.name} ready ({size / 1e6:.0f} MB)")
    return img


def _debootstrap(os_name: str, target: Path, say: Progress) -> None:
    target.mkdir(parents=True)
    argv = [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(PACKAGES[os_name])}",
        SUITE,
        str(target),
        mirror(),
    ]
    # No package script may start a service on the host while the image is built.
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + BUILD_TIMEOUT
    last_stage, fetched = "", 0
    tail: list[str] = []
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-5:]
        for marker, stage in _STAGES:
            if marker in line and stage != last_stage:
                last_stage = stage
                say(stage)
        if line.startswith("I: Retrieving ") and "Release" not in line and "Packages" not in line:
            fetched += 1
            if fetched % _EVERY == 1:
                say(f"downloading packages ({fetched} so far)")
        if time.monotonic() > deadline:
            proc.kill()
            raise EcmpError(f"image build took longer than {BUILD_TIMEOUT:.0f} s; stopped")
    code = proc.wait()
    if code != 0:
        log_file = target / "debootstrap" / "debootstrap.log"
        detail = [ln for ln in tail if ln.startswith("E:")] or tail[-1:]
        if any(
            "Release" in ln or "resolve" in ln.lower() or "connect" in ln.lower() for ln in tail
        ):
            raise EcmpError(
                f"cannot reach the Debian package mirror {mirror()} "
                f"(set ECMPTUI_DEBIAN_MIRROR to use another): "
                f"{detail[0] if detail else 'debootstrap failed'}"
            )
        where = f" (see {log_file})" if log_file.exists() else ""
        raise EcmpError(
            f"debootstrap failed with exit {code}: {detail[0] if detail else 'no output'}{where}"
        )


def _customize(os_name: str, root: Path) -> None:
    """Offline changes: mask units, keep BIRD/nginx off until provisioned, no host keys."""
    systemd_dir = root / "etc" / "systemd" / "system"
    for unit in MASKED_UNITS:
        link = systemd_dir / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    for wants in systemd_dir.glob("*.wants"):
        for unit in recipe(os_name)["disabled"] + ["getty@tty1.service"]:
            (wants / unit).unlink(missing_ok=True)
    (root / "etc" / "systemd" / "journald.conf.d").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "systemd" / "journald.conf.d" / "ecmptui-lab.conf").write_text(JOURNALD_CONF)
    # Each machine gets its own machine-id (systemd makes one when the file is empty) and
    # host keys (written by the lab when the device is created).
    (root / "etc" / "machine-id").write_text("")
    for key in (root / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc" / "fstab").write_text("")
    # Systemd ships an empty resolv.conf in minbase; the lab has no DNS.
    apt_cache = root / "var" / "cache" / "apt" / "archives"
    for deb in apt_cache.glob("*.deb"):
        deb.unlink()
    shutil.rmtree(root / "debootstrap", ignore_errors=True)


def _du(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def stale() -> list[Path]:
    """Images of an older recipe (or a build that died), which no `lab up` uses any more."""
    current = {image(name).path.name for name in PACKAGES}
    if not IMAGE_ROOT.is_dir():
        return []
    return sorted(
        p
        for p in IMAGE_ROOT.iterdir()
        if p.is_dir()
        and re.fullmatch(r"debian12-[a-z]+-[0-9a-f]{12}(\.building-\d+)?", p.name)
        and p.name not in current
    )


def prune(in_use: set[Path]) -> list[Path]:
    """Remove the stale images no running machine is built on; returns what was removed."""
    removed = []
    for path in stale():
        if path in in_use:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed
