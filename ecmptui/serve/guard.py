"""What keeps `ecmptui serve` standing when strangers connect, like sshd's settings:
StrictModes for the files it trusts, MaxAuthTries with a growing delay, per-source
penalties (PerSourcePenalties) and a cap on connections still logging in (MaxStartups)."""

from __future__ import annotations

import os
import re
import stat
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecmptui.errors import EcmpError

MAX_COLS, MAX_ROWS = 500, 200  # a larger terminal request is clamped to this
MAX_AUTH_TRIES = 6  # failures on one connection, then it is closed
PASSWORD_ENV = "ECMPTUI_DEMO_PASSWORD"


class FileModeError(EcmpError):
    """A file the server would trust can be changed (or read) by others."""


def check_trusted_file(path: Path, what: str, private: bool = False) -> None:
    """Refuse a file (and the directory it is in) that another user could write, like
    sshd's StrictModes; `private` (a private key) also refuses one others can read."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise EcmpError(f"{what} {path}: no such file") from None
    except OSError as exc:
        raise EcmpError(f"{what} {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise EcmpError(f"{what} {path}: not a regular file")
    me = os.geteuid()
    bad = stat.S_IWGRP | stat.S_IWOTH | (stat.S_IRGRP | stat.S_IROTH if private else 0)
    if st.st_uid not in (0, me):
        raise FileModeError(f"{what} {path}: owned by uid {st.st_uid}, not by this user or root")
    if st.st_mode & bad:
        want = "0600" if private else "not group/world-writable (e.g. 0644)"
        raise FileModeError(
            f"{what} {path}: mode {stat.S_IMODE(st.st_mode):04o} lets other "
            f"users {'read or ' if private else ''}change it; make it {want}"
        )
    # every directory up to / (sshd's StrictModes): one another user may write in could
    # swap the file (a sticky directory like /tmp only lets its owner do that)
    for directory in path.resolve().parents:
        d = directory.stat()
        if d.st_uid not in (0, me):
            raise FileModeError(
                f"{what} {path}: {directory} is owned by uid {d.st_uid}, not by this user or root"
            )
        if d.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not d.st_mode & stat.S_ISVTX:
            raise FileModeError(f"{what} {path}: {directory} is group/world-writable")


def demo_password(file: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """The demo password from --demo-password-file or $ECMPTUI_DEMO_PASSWORD (never from the
    command line, where `ps` shows it). None: no password login."""
    if env is None:
        env = os.environ
    if file is not None:
        path = Path(file)
        check_trusted_file(path, "--demo-password-file", private=True)  # a secret: 0600
        lines = path.read_text().splitlines()
        value = lines[0] if lines else ""
        source = f"--demo-password-file {path}"
    elif PASSWORD_ENV in env:
        value, source = env[PASSWORD_ENV], f"${PASSWORD_ENV}"
    else:
        return None
    if not value.strip():
        raise EcmpError(f"{source}: the demo password is empty (anyone could log in)")
    if len(value) < 8:
        raise EcmpError(f"{source}: the demo password is shorter than 8 characters")
    return value


TERM_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
MAX_ENV = 8  # variables a session may pass (AcceptEnv LANG LC_*)
ENV_NAME_RE = re.compile(r"LANG|LANGUAGE|LC_[A-Z]{1,16}")
ENV_VALUE_RE = re.compile(r"[A-Za-z0-9_.@:-]{0,64}")  # a locale name, nothing else


def accept_env(name: str, value: str) -> bool:
    """Whether an env request is one the app may get (Debian sshd's AcceptEnv LANG LC_*)."""
    return ENV_NAME_RE.fullmatch(name) is not None and ENV_VALUE_RE.fullmatch(value) is not None


def valid_term(term: str) -> bool:
    """A terminal type the app may be given (a name from terminfo, not escape codes)."""
    return TERM_RE.fullmatch(term) is not None


def clamp_size(cols: int, rows: int) -> tuple[int, int]:
    """A terminal size the app may be given (a 0 means the client did not say)."""
    return max(20, min(cols or 80, MAX_COLS)), max(10, min(rows or 24, MAX_ROWS))


def failure_delay(failures: int, source_failures: int) -> float:
    """Seconds to wait before answering the `failures`-th failed attempt on a connection:
    doubling per failure (0.1, 0.2, 0.4 ...), more for a source that failed often."""
    return min(4.0, 0.1 * 2 ** (failures - 1)) + min(2.0, 0.05 * source_failures)


@dataclass
class SourceRecord:
    failures: deque = field(default_factory=deque)  # times of recent failures
    blocked_until: float = 0.0
    penalties: int = 0


class Penalties:
    """Per source address: recent failures; too many and the address is refused for a
    while, twice as long each time (30 s, 60 s, ... at most 10 min)."""

    def __init__(
        self,
        threshold: int = 20,
        window: float = 600.0,
        base: float = 30.0,
        cap: float = 600.0,
        clock: Any = time.monotonic,
    ) -> None:
        self.threshold, self.window, self.base, self.cap = threshold, window, base, cap
        self.clock = clock
        self._by_source: dict[str, SourceRecord] = {}

    def _rec(self, source: str) -> SourceRecord:
        rec = self._by_source.setdefault(source, SourceRecord())
        now = self.clock()
        while rec.failures and rec.failures[0] < now - self.window:
            rec.failures.popleft()
        return rec

    def recent(self, source: str) -> int:
        return len(self._rec(source).failures)

    def blocked(self, source: str) -> float:
        """Seconds this source is still refused for (0: it may connect)."""
        return max(0.0, self._rec(source).blocked_until - self.clock())

    def failed(self, source: str) -> bool:
        """Count a failure; True when it has just earned the source a penalty."""
        rec = self._rec(source)
        rec.failures.append(self.clock())
        if len(rec.failures) >= self.threshold:
            rec.blocked_until = self.clock() + min(self.cap, self.base * 2**rec.penalties)
            rec.penalties += 1
            rec.failures.clear()
            return True
        return False

    def prune(self) -> None:
        """Forget sources with nothing recent (bounded memory under a scan)."""
        now = self.clock()
        for src in [
            s
            for s, r in self._by_source.items()
            if r.blocked_until < now and not self._rec(s).failures
        ]:
            del self._by_source[src]
