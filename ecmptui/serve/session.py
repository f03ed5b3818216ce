"""One served terminal: a PTY whose other end runs the app, its limits and its end."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import pty
import signal
import struct
import sys
import termios
import time
from typing import Any, Protocol

import asyncssh

from ecmptui.jsonish import JsonObject
from ecmptui.serve import guard
from ecmptui.serve.audit import Who
from ecmptui.serve.settings import ServeConfig, ServerState

log = logging.getLogger("ecmptui.serve")

ERROR_FD = 3  # where a session's app writes what a viewer must not see
SERVED_ENV, ERROR_FD_ENV = "ECMPTUI_SERVED", "ECMPTUI_ERROR_FD"
EXIT_GRACE = 3.0  # seconds an app has to end by itself before it is killed
WRITE_HIGH_WATER = 256 * 1024  # unsent bytes a viewer may hold before its app is paused
STALL_S = 60.0  # a viewer that reads nothing for this long is disconnected
# what a terminal needs after an app that did not clean up: main screen, cursor, no mouse
RESET = b"\x1b[?1049l\x1b[?25h\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?2004l\x1b[0m"


class Connection(Protocol):
    """What a session needs of the SSH connection it belongs to (`ssh.DashboardServer`)."""

    state: ServerState
    cfg: ServeConfig
    conn: asyncssh.SSHServerConnection | None
    who: Who
    ip: str
    sessions: int  # terminals asked for on this connection
    live: int  # of those, running now

    def session_over(self) -> None: ...


class DashboardSession(asyncssh.SSHServerSession):
    """One terminal: a PTY whose other end runs the app."""

    def __init__(self, server: Connection) -> None:
        self.server, self.state, self.cfg = server, server.state, server.cfg
        self.who = server.who
        self.chan: asyncssh.SSHServerChannel | None = None
        self.term = "xterm-256color"
        self.size = (80, 24)
        self.master: int | None = None
        self.errors: int | None = None
        self.error_lines = 0
        self.pid: int | None = None
        self.counted = False
        self.started = time.monotonic()
        self.last_input = time.monotonic()
        self.tokens = float(self.cfg.input_rate * 4)
        self.token_t = time.monotonic()
        self.token: str | None = None
        self.env: dict[str, str] = {}  # accepted (LANG, LC_*), for the app
        self.env_ignored = 0
        self.env_names: list[str] = []
        self._stalled: asyncio.TimerHandle | None = None  # the viewer stopped reading
        self._watch: asyncio.Task | None = None
        self._ending: tuple[str, bytes | None] | None = None
        self._kill_timer: asyncio.TimerHandle | None = None

    def connection_made(self, chan: asyncssh.SSHServerChannel) -> None:
        self.chan = chan
        # requests asyncssh would take without asking the session (its handlers are looked
        # up on the channel by name): env is never stored (sshd without AcceptEnv: nothing
        # kept), x11 and agent forwarding are refused and logged
        chan._process_env_request = self._env_request
        chan._process_x11_req_request = self._refused_request("x11 forwarding")
        chan._process_auth_agent_req_at_openssh_dot_com_request = self._refused_request(
            "agent forwarding"
        )
        chan.set_write_buffer_limits(high=WRITE_HIGH_WATER)

    def _env_request(self, packet: asyncssh.packet.SSHPacket) -> bool:
        """An env request, as sshd with `AcceptEnv LANG LC_*` takes it: a few short locale
        variables go to the app; the rest is read, counted and refused, never kept (one line
        per session says how many and which, the first few)."""
        raw_name, raw_value = packet.get_string(), packet.get_string()
        packet.check_end()
        name, value = raw_name.decode(errors="replace"), raw_value.decode(errors="replace")
        if guard.accept_env(name, value) and (name in self.env or len(self.env) < guard.MAX_ENV):
            self.env[name] = value
            return True
        self.env_ignored += 1
        if len(self.env_names) < 5:
            self.env_names.append(name[:64])
        return False

    def _refused_request(self, what: str) -> Any:
        def refuse(packet: asyncssh.packet.SSHPacket) -> bool:
            self.state.audit.repeated((id(self), what), "refused", self.who, why=what)
            return False

        return refuse

    def _size(self, cols: int, rows: int) -> tuple[int, int]:
        size = guard.clamp_size(cols, rows)
        if (cols, rows) != size and cols and rows:  # a storm of these is one line a while
            self.state.audit.repeated(
                (id(self), "resize"),
                "resize-clamped",
                self.who,
                asked=f"{cols}x{rows}",
                given=f"{size[0]}x{size[1]}",
            )
        return size

    def pty_requested(
        self, term_type: str, term_size: tuple[Any, ...], term_modes: JsonObject
    ) -> bool:
        if term_type and guard.valid_term(term_type):
            self.term = term_type
        elif term_type:  # escape codes, or 30,000 characters: not for the app's environment
            self.state.audit.event("term-refused", self.who, term=term_type, given=self.term)
        self.size = self._size(term_size[0], term_size[1])
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        self.state.audit.event("refused", self.who, why="exec request")
        return False

    def subsystem_requested(self, subsystem: str) -> bool:
        self.state.audit.event("refused", self.who, why=f"subsystem {subsystem}")
        return False

    def _refuse(self, why: str, message: str) -> None:
        assert self.chan is not None
        self.state.audit.repeated((self.server.ip, why), "refused", self.who, why=why)
        self.chan.write(f"ecmptui: {message}\r\n".encode())
        self.chan.exit(1)
        self.chan = None
        self.server.session_over()  # a connection with no terminal left does not linger

    def session_started(self) -> None:
        assert self.chan is not None
        self.server.sessions += 1
        role = self.who.role
        source = self.server.ip
        if self.env_ignored:
            self.state.audit.event(
                "env-ignored", self.who, count=self.env_ignored, names=",".join(self.env_names)
            )
        if self.chan.get_terminal_type() is None:
            self._refuse("no terminal", "this server needs a terminal (ssh -t)")
            return
        if self.server.live >= self.cfg.max_sessions_per_connection:
            self._refuse(
                "sessions per connection",
                f"too many sessions on this connection ({self.cfg.max_sessions_per_connection})",
            )
            return
        if self.state.sessions_by_source.get(source, 0) >= self.cfg.max_sessions_per_source:
            self._refuse(
                "sessions per source",
                "too many sessions from your address "
                f"({self.cfg.max_sessions_per_source}); try again later",
            )
            return
        if self.state.active[role] >= self.state.limit(role):
            self._refuse(
                f"{role} slots full ({self.state.limit(role)})",
                f"too many {role} sessions ({self.state.limit(role)}); try again later",
            )
            return
        self.state.active[role] += 1
        self.state.sessions_by_source[source] = self.state.sessions_by_source.get(source, 0) + 1
        self.server.live += 1
        self.counted = True
        self.state.sessions.add(self)
        try:
            self._spawn()
        except OSError as exc:
            log.error("could not start the app: %s", exc)
            self._finish(b"ecmptui: could not start the dashboard\r\n", "app did not start")
            return
        self._watch = asyncio.get_running_loop().create_task(self._watch_time())

    def _spawn(self) -> None:
        argv = [sys.executable, "-m", "ecmptui", *self.cfg.app_args]
        if self.who.role != "operator":
            argv.append("--read-only")
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("COLUMNS", "LINES", "SSH_AUTH_SOCK", guard.PASSWORD_ENV)
        }
        env.update(self.env)  # the client's locale, if it sent one sshd would accept
        env["TERM"] = self.term
        env[SERVED_ENV], env[ERROR_FD_ENV] = "1", str(ERROR_FD)
        if self.state.hub is not None:
            self.token = self.state.hub.register(self.who)
            env.update(self.state.hub.env(self.token))
        err_r, err_w = os.pipe()
        pid, master = pty.fork()
        if pid == 0:  # child: pty.fork made it a session leader with the PTY as its terminal
            try:
                os.close(err_r)
                os.dup2(err_w, ERROR_FD)
                signal.signal(signal.SIGHUP, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                os.chdir("/")
                os.execve(sys.executable, argv, env)
            finally:
                os._exit(127)
        os.close(err_w)
        os.set_blocking(err_r, False)
        self.pid, self.master, self.errors = pid, master, err_r
        self.state.children.add(pid)
        self._resize()
        loop = asyncio.get_running_loop()
        loop.add_reader(master, self._pty_output)
        loop.add_reader(err_r, self._app_errors)
        self.state.audit.event(
            "session-start",
            self.who,
            pid=pid,
            size=f"{self.size[0]}x{self.size[1]}",
            term=self.term,
        )

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
            reason, message = self._ending or ("app exited", None)
            self._finish(message, reason, app="exited")
            return
        if self.chan is not None:
            self.chan.write(data)

    def _app_errors(self) -> None:
        """What the app wrote for the server's log only (a traceback); bounded."""
        if self.errors is None:
            return
        try:
            data = os.read(self.errors, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.errors)
            os.close(self.errors)
            self.errors = None
            return
        for line in data.decode(errors="replace").splitlines():
            if self.error_lines < 400:
                self.error_lines += 1
                log.warning("app %s: %s", self.pid, line)

    # -- backpressure: a viewer that stops reading stops its app, not the server's memory --
    def pause_writing(self) -> None:
        """The channel holds WRITE_HIGH_WATER unsent: stop reading the app's terminal (the
        app then blocks on its own output); one that does not drain in STALL_S is ended."""
        if self.master is not None:
            asyncio.get_running_loop().remove_reader(self.master)
        if self._stalled is None:
            self._stalled = asyncio.get_running_loop().call_later(STALL_S, self._stall)

    def resume_writing(self) -> None:
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None
        if self.master is not None:
            asyncio.get_running_loop().add_reader(self.master, self._pty_output)

    def _stall(self) -> None:
        self._stalled = None
        self.state.audit.event(
            "stalled", self.who, why=f"the client read nothing for {STALL_S:.0f} s"
        )
        self._finish(None, f"client stopped reading for {STALL_S:.0f} s", app="killed")
        if self.server.conn is not None:  # what it holds unread goes with it
            self.server.conn.abort()

    def data_received(self, data: bytes, datatype: Any) -> None:
        now = time.monotonic()
        self.last_input = now
        # token bucket: a session may not flood the app with input
        self.tokens = min(
            self.cfg.input_rate * 4, self.tokens + (now - self.token_t) * self.cfg.input_rate
        )
        self.token_t = now
        if len(data) > self.tokens:
            data = data[: int(self.tokens)]
        self.tokens -= len(data)
        if data and self.master is not None:
            try:
                os.write(self.master, data)
            except OSError:
                pass

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        self.size = self._size(width, height)
        self._resize()

    def eof_received(self) -> bool:
        self._finish(None, "client closed")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(None, "client closed")

    async def _watch_time(self) -> None:
        limit = self.cfg.max_session if self.who.role != "operator" else None
        while self.pid is not None and self._ending is None:
            now = time.monotonic()
            idle_left = self.cfg.idle_timeout - (now - self.last_input)
            left = idle_left if limit is None else min(idle_left, limit - (now - self.started))
            if left <= 0:
                if idle_left <= 0:
                    self.end("idle timeout", b"ecmptui: idle timeout\r\n")
                else:
                    self.end("max session length", b"ecmptui: session time is over\r\n")
                return
            await asyncio.sleep(min(left + 0.05, 5.0))

    def end(self, reason: str, message: bytes | None = None) -> None:
        """End the session the normal way: the app gets SIGTERM and exits by itself (so it
        restores the terminal); killed after EXIT_GRACE if it does not."""
        if self._ending is not None or self.pid is None:
            return
        self._ending = (reason, message)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        self._kill_timer = asyncio.get_running_loop().call_later(
            EXIT_GRACE, lambda: self._finish(message, reason, app="killed")
        )

    def _finish(self, message: bytes | None, reason: str, app: str = "hung up") -> None:
        """End the app process (no orphans) and the channel; safe to call repeatedly."""
        loop = asyncio.get_running_loop()
        if self._kill_timer is not None:
            self._kill_timer.cancel()
        if self.master is not None:
            loop.remove_reader(self.master)
            os.close(self.master)
            self.master = None
        if self.errors is not None:
            self._app_errors()  # what it wrote on its way out
        if self.errors is not None:
            loop.remove_reader(self.errors)
            os.close(self.errors)
            self.errors = None
        if self.pid is not None:
            pid, self.pid = self.pid, None
            kill_tree(pid)
            task = loop.create_task(reap(pid))
            task.add_done_callback(lambda _t: self.state.children.discard(pid))
        if self.token is not None and self.state.hub is not None:
            self.state.hub.unregister(self.token)
            self.token = None
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None
        self.state.audit.forget((id(self), "resize"))
        if self.counted:
            self.counted = False
            self.state.active[self.who.role] -= 1
            self.server.live -= 1
            left = self.state.sessions_by_source.get(self.server.ip, 1) - 1
            if left > 0:
                self.state.sessions_by_source[self.server.ip] = left
            else:
                self.state.sessions_by_source.pop(self.server.ip, None)
            self.state.sessions.discard(self)
            if not self.state.sessions:
                self.state.all_ended.set()
            self.state.audit.event(
                "session-end",
                self.who,
                reason=reason,
                app=app,
                duration_s=round(time.monotonic() - self.started, 1),
            )
        if self._watch is not None and self._watch is not asyncio.current_task():
            self._watch.cancel()
        if self.chan is not None:
            chan, self.chan = self.chan, None
            try:
                chan.write(RESET + b"\r\n" + (message or b""))
                chan.exit(0)
            except (OSError, asyncssh.Error):
                pass
            self.server.session_over()


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
