"""A lab machine: a Debian system with systemd as PID 1, in namespaces of its own.

A machine joins one network namespace (made by the fabric) and gets its own mount, PID, UTS,
IPC and cgroup namespaces. Its root is an overlay: the cached image below, read-only and shared;
a per-machine upper layer in the lab's state directory above. Nothing of it is mounted in the
host's mount namespace, so when its processes die the kernel drops its mounts with them.

Its processes are kept in a cgroup of their own (`ecmptui/<lab>-<machine>` in the unified
hierarchy), so stopping a machine kills every process in it at once, whatever it forked.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

from ecmptui.errors import EcmpError
from ecmptui.waits import Deadline

BOOT_SCRIPT = r"""
set -eu
M=$1; LOWER=$2; UPPER=$3; WORK=$4
mount -t overlay overlay -o "lowerdir=$LOWER,upperdir=$UPPER,workdir=$WORK" "$M"
mount -t proc -o nosuid,nodev,noexec proc "$M/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$M/sys"
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$M/sys/fs/cgroup"
mount -t tmpfs -o mode=755,size=4m,nosuid tmpfs "$M/dev"
for spec in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
  IFS=: read -r name major minor <<EOF
$spec
EOF
  mknod -m 666 "$M/dev/$name" c "$major" "$minor"
done
mkdir "$M/dev/pts" "$M/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5,nosuid,noexec devpts "$M/dev/pts"
ln -s pts/ptmx "$M/dev/ptmx"
mount -t tmpfs -o mode=1777,size=16m,nosuid,nodev tmpfs "$M/dev/shm"
ln -s /proc/self/fd "$M/dev/fd"
ln -s /proc/self/fd/0 "$M/dev/stdin"
ln -s /proc/self/fd/1 "$M/dev/stdout"
ln -s /proc/self/fd/2 "$M/dev/stderr"
cd "$M"
pivot_root . .
umount -l .
exec /usr/bin/env -i container=other PATH=/usr/sbin:/usr/bin:/sbin:/bin /sbin/init
"""


def cgroup_root() -> Path:
    """The cgroup v2 hierarchy: /sys/fs/cgroup on a unified host, .../unified on a hybrid one."""
    base = Path("/sys/fs/cgroup")
    if (base / "cgroup.controllers").exists():
        return base
    if (base / "unified" / "cgroup.procs").exists():
        return base / "unified"
    raise EcmpError("no cgroup v2 hierarchy found under /sys/fs/cgroup (lab machines need it)")


def cgroup_parent() -> Path:
    return cgroup_root() / "ecmptui"


class Machine:
    """One machine: `name` is unique on the host (`<lab>-srv1`), `netns` its network
    namespace (None: the host's own network, for the lab's package proxy only)."""

    def __init__(self, name: str, netns: str | None, directory: Path, lower: Path) -> None:
        self.name, self.netns, self.dir, self.lower = name, netns, directory, lower
        self._launcher: subprocess.Popen | None = None

    # -- paths ---------------------------------------------------------------------------
    @property
    def upper(self) -> Path:
        return self.dir / "upper"

    @property
    def cgroup(self) -> Path:
        return cgroup_parent() / self.name

    @property
    def pid_file(self) -> Path:
        return self.dir / "init.pid"

    @property
    def console(self) -> Path:
        return self.dir / "console.log"

    # -- files before the first boot ------------------------------------------------------
    def put(
        self, path: str, text: str | bytes, mode: int = 0o644, owner: str | None = None
    ) -> None:
        """Write a file into the machine: into its upper layer when it is not running
        (first boot), else through its own root. `owner` is a user of the image (its
        group of the same name)."""
        pid = self.pid()
        base = Path(f"/proc/{pid}/root") if pid else self.upper
        target = base / path.lstrip("/")
        if pid:
            target.parent.mkdir(parents=True, exist_ok=True)
        else:
            self._upper_dirs(Path(path).parent)
        data = text.encode() if isinstance(text, str) else text
        tmp = target.with_name(f".{target.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        if owner:
            os.chown(tmp, self._id("passwd", owner), self._id("group", owner))
        os.replace(tmp, target)

    def _id(self, table: str, name: str) -> int:
        for line in (self.lower / "etc" / table).read_text().splitlines():
            fields = line.split(":")
            if fields[0] == name:
                return int(fields[2])
        raise EcmpError(f"machine {self.name}: no {table} entry {name!r} in the image")

    def enable(self, unit: str, target: str = "multi-user.target") -> None:
        """Enable a unit of the image before the first boot (what `systemctl enable` does)."""
        link = self.upper / "etc/systemd/system" / f"{target}.wants" / unit
        self._upper_dirs(Path("/etc/systemd/system") / f"{target}.wants")
        link.unlink(missing_ok=True)
        link.symlink_to(f"/lib/systemd/system/{unit}")

    def mask(self, unit: str) -> None:
        self._upper_dirs(Path("/etc/systemd/system"))
        link = self.upper / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")

    def _upper_dirs(self, path: Path) -> None:
        """Create `path`'s directories in the upper layer with the image's owners and modes
        (a root-owned 0755 /etc/bird or /root in the upper layer would hide the image's)."""
        current = self.upper
        current.mkdir(parents=True, exist_ok=True)
        for part in path.parts[1:]:
            current = current / part
            if current.is_dir():
                continue
            lower = self.lower / current.relative_to(self.upper)
            current.mkdir()
            if lower.is_dir():
                st = lower.stat()
                os.chown(current, st.st_uid, st.st_gid)
                os.chmod(current, st.st_mode & 0o7777)
            else:
                os.chmod(current, 0o755)

    def get(self, path: str) -> str | None:
        pid = self.pid()
        if not pid:
            return None
        try:
            return (Path(f"/proc/{pid}/root") / path.lstrip("/")).read_text()
        except OSError:
            return None

    # -- lifecycle -----------------------------------------------------------------------
    def pid(self) -> int | None:
        """Host PID of the machine's init, or None when it is not running."""
        try:
            pid = int(self.pid_file.read_text())
        except (OSError, ValueError):
            return None
        try:
            with open(f"/proc/{pid}/cgroup") as fh:
                if f"/{self.name}" not in fh.read():
                    return None
        except OSError:
            return None
        return pid

    def boot(self, timeout: float = 10.0) -> int:
        """Start systemd in the machine; returns its host PID once it runs as init."""
        if self.pid():
            return self.pid() or 0
        for sub in ("upper", "work", "merged"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.cgroup.mkdir(parents=True, exist_ok=True)
        procs = str(self.cgroup / "cgroup.procs")

        def join_cgroup() -> None:  # runs in the child, before exec
            with open(procs, "w") as fh:
                fh.write("0\n")

        argv = ["ip", "netns", "exec", self.netns] if self.netns else []
        argv += [
            "unshare",
            "--pid",
            "--mount",
            "--uts",
            "--ipc",
            "--cgroup",
            "--fork",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-c",
            BOOT_SCRIPT,
            "boot",
            str(self.dir / "merged"),
            str(self.lower),
            str(self.upper),
            str(self.dir / "work"),
        ]
        with open(self.console, "ab") as log:
            self._launcher = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                close_fds=True,
                cwd="/",
                preexec_fn=join_cgroup,
            )
        deadline = Deadline(timeout)  # longer on a loaded machine
        while not deadline.expired():
            pid = self._find_init()
            if pid:
                self.pid_file.write_text(f"{pid}\n")
                return pid
            time.sleep(0.01)
        self.stop()
        tail = (
            self.console.read_text(errors="replace").strip().splitlines()[-1:]
            if self.console.exists()
            else []
        )
        raise EcmpError(
            f"machine {self.name} did not boot within {deadline.elapsed():.0f} s"
            + (f": {tail[0]}" if tail else "")
        )

    def _find_init(self) -> int | None:
        """The process in our cgroup that runs systemd as PID 1 of its namespace."""
        for pid in self.processes():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                exe = os.readlink(f"/proc/{pid}/exe")
            except OSError:
                continue
            nspid = next(
                (ln.split()[-1] for ln in status.splitlines() if ln.startswith("NSpid:")), ""
            )
            if nspid == "1" and exe.endswith("/systemd"):
                return pid
        return None

    def processes(self) -> list[int]:
        """Every process of the machine (its whole cgroup subtree)."""
        pids: list[int] = []
        if not self.cgroup.is_dir():
            return pids
        for dirpath, _dirs, _files in os.walk(self.cgroup):
            try:
                text = Path(dirpath, "cgroup.procs").read_text()
            except OSError:
                continue
            pids += [int(p) for p in text.split()]
        return pids

    def running(self) -> bool:
        return self.pid() is not None

    def stop(self, timeout: float = 5.0) -> None:
        """Power off hard: kill every process of the machine, then remove its cgroup."""
        kill_cgroup(self.cgroup, timeout)
        self.pid_file.unlink(missing_ok=True)
        if self._launcher is not None:  # reap our child, or it stays a zombie
            self._launcher.wait(timeout)
            self._launcher = None

    def remove(self) -> None:
        """Stop the machine and delete its upper layer."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- commands inside -----------------------------------------------------------------
    def exec_argv(self, *argv: str) -> list[str]:
        pid = self.pid()
        if not pid:
            raise EcmpError(f"machine {self.name} is not running")
        return [
            "nsenter",
            "-t",
            str(pid),
            "-m",
            "-u",
            "-i",
            "-n",
            "-p",
            "-C",
            "-r",
            "-w",
            "--",
            "/usr/bin/env",
            "-i",
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            *argv,
        ]

    def run(
        self, *argv: str, check: bool = True, timeout: float = 10.0, input: str | None = None
    ) -> subprocess.CompletedProcess:
        try:
            proc = subprocess.run(
                self.exec_argv(*argv), capture_output=True, text=True, timeout=timeout, input=input
            )
        except subprocess.TimeoutExpired as exc:
            raise EcmpError(
                f"{self.name}: {shlex.join(argv)}: timed out after {timeout:.0f} s"
            ) from exc
        if check and proc.returncode != 0:
            msg = (proc.stderr or proc.stdout).strip().splitlines()
            raise EcmpError(
                f"{self.name}: {shlex.join(argv)}: {msg[-1] if msg else f'exit {proc.returncode}'}"
            )
        return proc

    def rss_bytes(self) -> int:
        """Resident memory of all the machine's processes."""
        total = 0
        for pid in self.processes():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                pass
        return total


def kill_cgroup(cgroup: Path, timeout: float = 5.0) -> None:
    """SIGKILL every process in `cgroup` and its children, wait (bounded), remove the dirs."""
    if not cgroup.is_dir():
        return
    kill_file = cgroup / "cgroup.kill"
    deadline = time.monotonic() + timeout
    seen: set[int] = set()
    while time.monotonic() < deadline:
        pids = _tree_pids(cgroup)
        seen.update(pids)
        if not pids:
            break
        if kill_file.exists():
            try:
                kill_file.write_text("1\n")
            except OSError:
                pass
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.02)
    # An exited process leaves cgroup.procs at once but lives on until reaped; a PID
    # namespace's init is reaped only after every process in it is gone. Wait for that.
    while time.monotonic() < deadline and any(_alive(p) for p in seen):
        time.sleep(0.01)
    for dirpath, _dirs, _files in sorted(os.walk(cgroup), key=lambda w: -len(w[0])):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass
    if cgroup.exists():
        raise EcmpError(f"could not remove cgroup {cgroup}: processes still in it")


def _alive(pid: int) -> bool:
    """Still running or dying; a zombie (waiting for its parent to reap it) counts as gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def _tree_pids(cgroup: Path) -> list[int]:
    pids: list[int] = []
    for dirpath, _dirs, _files in os.walk(cgroup):
        try:
            pids += [int(p) for p in Path(dirpath, "cgroup.procs").read_text().split()]
        except OSError:
            pass
    return pids


def leftover_cgroups(prefix: str) -> list[Path]:
    """Machine cgroups whose name starts with `prefix` (for teardown after a crash)."""
    try:
        parent = cgroup_parent()
    except EcmpError:
        return []
    if not parent.is_dir():
        return []
    return sorted(p for p in parent.iterdir() if p.is_dir() and p.name.startswith(prefix))


def remove_parent_if_empty() -> None:
    """Remove `ecmptui/` from the cgroup tree once no lab has a machine in it."""
    try:
        cgroup_parent().rmdir()
    except (OSError, EcmpError):
        pass
