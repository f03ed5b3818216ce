"""One writer per deployment: every command and dashboard action that changes a deployment
holds its lock (an flock on a file named for the deployment), so two operators cannot
provision, drill or act on the same deployment at once. Reads never take it.

The lock file records who holds it (`what`, PID, since), for the one-line refusal:
`busy: provision by PID 1234 since 12:01:03`. The kernel drops an flock when its process
dies, so a crashed holder never leaves the deployment locked.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from pathlib import Path
from types import TracebackType

from ecmptui.errors import EcmpError

POLL_S = 0.1


def lock_dir() -> Path:
    """/run/lock (shared by every user of the host) where it is writable, else ~/.cache."""
    shared = Path("/run/lock")
    if shared.is_dir() and os.access(shared, os.W_OK):
        return shared / "ecmptui"
    return Path.home() / ".cache" / "ecmptui" / "locks"


class BusyError(EcmpError):
    """Another writer holds the deployment."""


class DeploymentLock:
    """`with DeploymentLock(key, "provision", wait=0): ...`"""

    def __init__(self, key: str, what: str, wait: float = 0.0) -> None:
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        self.path = lock_dir() / f"{digest}.lock"
        self.key, self.what, self.wait = key, what, wait
        self._fd: int | None = None

    def holder(self) -> str:
        """Who holds the lock now, as one phrase."""
        try:
            info = json.loads(self.path.read_text() or "{}")
            since = time.strftime("%H:%M:%S", time.localtime(float(info["since"])))
            return f"{info['what']} by PID {int(info['pid'])} since {since}"
        except (OSError, ValueError, KeyError, TypeError):
            return "another ecmptui"

    def acquire(self) -> None:
        parent = self.path.parent
        if not parent.is_dir():
            parent.mkdir(parents=True, exist_ok=True)
            if parent.parent == Path("/run/lock"):
                os.chmod(parent, 0o1777)  # like /tmp: every operator of the host shares it
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise EcmpError(f"cannot open the deployment lock {self.path}: {exc.strerror}") from exc
        if os.fstat(fd).st_uid == os.getuid():
            os.fchmod(fd, 0o666)  # who holds it is no secret; others must be able to lock
        deadline = time.monotonic() + max(0.0, self.wait)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    hint = (
                        f" (waited {self.wait:.0f} s)"
                        if self.wait
                        else "; pass --wait SECONDS to wait for it"
                    )
                    raise BusyError(f"busy: {self.holder()} holds {self.key}{hint}") from None
                time.sleep(POLL_S)
        os.ftruncate(fd, 0)
        os.pwrite(
            fd,
            json.dumps({"what": self.what, "pid": os.getpid(), "since": time.time()}).encode(),
            0,
        )
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DeploymentLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
