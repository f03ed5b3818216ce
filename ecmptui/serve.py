"""`ecmptui serve`: the dashboard over SSH (asyncssh), one PTY and one app process per session.

Keys decide everything: a key in the operators file gets the full app, any other key in the
authorized-keys file gets `--read-only`; passwords only with --demo-password, and then only
read-only. Shells with a PTY only: exec, subsystems, X11, agent and port forwarding are
refused. Every login and logout is logged with the key's fingerprint.
"""

from __future__ import annotations

import asyncio
import fcntl
import hmac
import logging
import os
import pty
import signal
import struct
import sys
import termios
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from ecmptui.errors import EcmpError

log = logging.getLogger("ecmptui.serve")


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ecmptui" / "serve"


@dataclass
class ServeConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = 2222
    authorized_keys: Path = field(default_factory=lambda: state_dir() / "authorized_keys")
    operators: Path | None = None
    host_key: Path = field(default_factory=lambda: state_dir() / "ssh_host_ed25519_key")
    max_sessions: int = 10
    idle_timeout: float = 900.0
    input_rate: int = 65536            # bytes/s a session may type (burst: 4x)
    demo_password: str | None = None
    app_args: list[str] = field(default_factory=list)  # --config/--lab for the app


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise EcmpError(f"--listen {text!r}: expected HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def load_host_key(path: Path) -> asyncssh.SSHKey:
    """The server's host key, generated once (0600) so clients can pin it."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = asyncssh.generate_private_key("ssh-ed25519")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.export_private_key())
        log.info("generated host key %s (%s)", path, key.get_fingerprint())
    return asyncssh.read_private_key(path)


def read_keys(path: Path | None) -> dict[str, str]:
    """Fingerprint -> comment of every key in an authorized_keys-style file."""
    if path is None or not path.exists():
        return {}
    keys = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            key = asyncssh.import_public_key(line)
        except (asyncssh.KeyImportError, ValueError):
            log.warning("%s: skipping a line that is not a public key", path)
            continue
        keys[key.get_fingerprint()] = line.split()[2] if len(line.split()) > 2 else ""
    return keys


class Stats:
    """Sessions running now (shared by all connections)."""

    def __init__(self) -> None:
        self.active = 0
        self.children: set[int] = set()


class DashboardServer(asyncssh.SSHServer):
    def __init__(self, cfg: ServeConfig, stats: Stats) -> None:
        self.cfg, self.stats = cfg, stats
        self.conn: asyncssh.SSHServerConnection | None = None
        self.fingerprint = "-"
        self.role = "viewer"
        self.peer = "?"

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        peer = conn.get_extra_info("peername") or ("?", 0)
        self.peer = f"{peer[0]}:{peer[1]}"

    def connection_lost(self, exc: Exception | None) -> None:
        if self.fingerprint != "-":
            log.info("logout %s %s (%s)", self.peer, self.fingerprint, self.role)

    def begin_auth(self, username: str) -> bool:
        return True  # no anonymous ("none") login, ever

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        fp = key.get_fingerprint()
        if fp in read_keys(self.cfg.operators):
            self.role = "operator"
        elif fp in read_keys(self.cfg.authorized_keys):
            self.role = "viewer"
        else:
            log.info("refused key %s from %s", fp, self.peer)
            return False
        self.fingerprint = fp
        self.username = username
        return True

    def auth_completed(self) -> None:
        log.info("login %s %s as %s (user name %r)", self.peer, self.fingerprint, self.role,
                 getattr(self, "username", "?"))

    def password_auth_supported(self) -> bool:
        return self.cfg.demo_password is not None

    def validate_password(self, username: str, password: str) -> bool:
        ok = self.cfg.demo_password is not None and hmac.compare_digest(
            password.encode(), self.cfg.demo_password.encode())
        if ok:
            self.role, self.fingerprint, self.username = "viewer", "password", username
        else:
            log.info("refused password from %s", self.peer)
        return ok

    def session_requested(self) -> asyncssh.SSHServerSession:
        return DashboardSession(self)


class DashboardSession(asyncssh.SSHServerSession):
    """One terminal: a PTY whose other end runs the app."""

    def __init__(self, server: DashboardServer) -> None:
        self.server = server
        self.cfg = server.cfg
        self.chan: asyncssh.SSHServerChannel | None = None
        self.term = "xterm-256color"
        self.size = (80, 24)
        self.master: int | None = None
        self.pid: int | None = None
        self.counted = False
        self.last_input = time.monotonic()
        self.tokens = float(self.cfg.input_rate * 4)
        self.token_t = time.monotonic()
        self._idle: asyncio.Task | None = None

    def connection_made(self, chan: asyncssh.SSHServerChannel) -> None:
        self.chan = chan

    def pty_requested(self, term_type: str, term_size: tuple, term_modes: dict) -> bool:
        self.term = term_type or self.term
        self.size = (term_size[0] or 80, term_size[1] or 24)
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        log.info("refused exec request from %s", self.server.peer)
        return False

    def subsystem_requested(self, subsystem: str) -> bool:
        log.info("refused subsystem %r from %s", subsystem, self.server.peer)
        return False

    def session_started(self) -> None:
        assert self.chan is not None
        if self.chan.get_terminal_type() is None:
            self.chan.write(b"ecmptui: this server needs a terminal (ssh -t)\r\n")
            self.chan.exit(1)
            return
        if self.server.stats.active >= self.cfg.max_sessions:
            log.info("refused session from %s: %d sessions already", self.server.peer,
                     self.server.stats.active)
            self.chan.write(f"ecmptui: too many sessions ({self.cfg.max_sessions}); "
                            "try again later\r\n".encode())
            self.chan.exit(1)
            return
        self.server.stats.active += 1
        self.counted = True
        try:
            self._spawn()
        except OSError as exc:
            log.error("could not start the app: %s", exc)
            self.chan.write(b"ecmptui: could not start the dashboard\r\n")
            self.chan.exit(1)
            return
        self._idle = asyncio.get_running_loop().create_task(self._watch_idle())

    def _spawn(self) -> None:
        argv = [sys.executable, "-m", "ecmptui", *self.cfg.app_args]
        if self.server.role != "operator":
            argv.append("--read-only")
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        env["TERM"] = self.term
        env.pop("SSH_AUTH_SOCK", None)
        pid, master = pty.fork()
        if pid == 0:  # child: pty.fork made it a session leader with the PTY as its terminal
            try:
                signal.signal(signal.SIGHUP, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                os.chdir("/")
                os.execve(sys.executable, argv, env)
            finally:
                os._exit(127)
        self.pid, self.master = pid, master
        self.server.stats.children.add(pid)
        self._resize()
        loop = asyncio.get_running_loop()
        loop.add_reader(master, self._pty_output)
        log.info("session %s pid %d (%s, %dx%d)", self.server.fingerprint, pid,
                 self.server.role, *self.size)

    def _resize(self) -> None:
        if self.master is not None:
            cols, rows = self.size
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def _pty_output(self) -> None:
        if self.master is None:
            return
        try:
            data = os.read(self.master, 65536)
        except OSError:
            data = b""
        if not data:
            self._finish()
            return
        if self.chan is not None:
            self.chan.write(data)

    def data_received(self, data: bytes, datatype) -> None:
        now = time.monotonic()
        self.last_input = now
        # token bucket: a session may not flood the app with input
        self.tokens = min(self.cfg.input_rate * 4,
                          self.tokens + (now - self.token_t) * self.cfg.input_rate)
        self.token_t = now
        if len(data) > self.tokens:
            data = data[: int(self.tokens)]
        self.tokens -= len(data)
        if data and self.master is not None:
            try:
                os.write(self.master, data)
            except OSError:
                pass

    def terminal_size_changed(self, width: int, height: int, pixwidth: int,
                              pixheight: int) -> None:
        self.size = (width or 80, height or 24)
        self._resize()

    def eof_received(self) -> bool:
        self._finish()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()

    async def _watch_idle(self) -> None:
        while self.pid is not None:
            await asyncio.sleep(min(5.0, self.cfg.idle_timeout / 2))
            if time.monotonic() - self.last_input > self.cfg.idle_timeout and self.chan:
                log.info("idle timeout for %s", self.server.fingerprint)
                self._finish(message=b"\r\necmptui: idle timeout\r\n")
                return

    def _finish(self, message: bytes | None = None) -> None:
        """End the app process (no orphans) and the channel; safe to call repeatedly."""
        if self.master is not None:
            asyncio.get_running_loop().remove_reader(self.master)
            os.close(self.master)
            self.master = None
        if self.pid is not None:
            pid, self.pid = self.pid, None
            kill_tree(pid)
            task = asyncio.get_running_loop().create_task(reap(pid))
            task.add_done_callback(lambda _t: self.server.stats.children.discard(pid))
        if self.counted:
            self.counted = False
            self.server.stats.active -= 1
        if self._idle is not None and self._idle is not asyncio.current_task():
            self._idle.cancel()
        if self.chan is not None:
            chan, self.chan = self.chan, None
            try:
                if message:
                    chan.write(message)
                chan.exit(0)
            except (OSError, asyncssh.Error):
                pass


def kill_tree(pid: int) -> None:
    """SIGHUP and SIGTERM the app's process group (it is a session leader); `reap` makes
    sure it is gone."""
    for sig in (signal.SIGHUP, signal.SIGTERM):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return


async def reap(pid: int, grace: float = 2.0) -> None:
    """Wait (bounded) for the app to exit, SIGKILL its group if it did not, and reap it."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        await asyncio.sleep(0.02)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


async def serve(cfg: ServeConfig, ready: asyncio.Event | None = None) -> None:
    host_key = load_host_key(cfg.host_key)
    if not cfg.authorized_keys.exists() and not (cfg.operators and cfg.operators.exists()):
        raise EcmpError(f"no authorized keys: create {cfg.authorized_keys} (viewers) or pass "
                        "--operators FILE")
    stats = Stats()
    try:
        server = await asyncssh.create_server(
            lambda: DashboardServer(cfg, stats), cfg.listen_host, cfg.listen_port,
            server_host_keys=[host_key], line_editor=False, encoding=None,
            allow_scp=False, agent_forwarding=False, x11_forwarding=False,
            login_timeout=30, keepalive_interval=30)
    except OSError as exc:
        raise EcmpError(f"cannot listen on {cfg.listen_host}:{cfg.listen_port}: "
                        f"{exc.strerror}") from exc
    log.info("serving the dashboard on %s:%d (host key %s)", cfg.listen_host,
             cfg.listen_port, host_key.get_fingerprint())
    if ready is not None:
        ready.set()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        server.close()
        children = list(stats.children)
        for pid in children:
            kill_tree(pid)
        await asyncio.gather(*(reap(pid) for pid in children))
        await server.wait_closed()
