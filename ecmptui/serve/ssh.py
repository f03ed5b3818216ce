"""`ecmptui serve`: the dashboard over SSH (asyncssh), one PTY and one app process per session,
all fed by one shared feed (`ecmptui.serve.feed`).

Keys decide the role: a key in the operators file gets the full app, any other key in the
authorized-keys file gets a read-only one; the demo password (from a file or the environment)
only ever gets read-only. Shells with a PTY only: exec, subsystems, X11, agent and port
forwarding are refused. The limits are sshd's (`guard`), every event goes to the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import asyncssh

from ecmptui.errors import EcmpError
from ecmptui.listen import parse_listen  # noqa: F401 - `serve --listen`, re-exported
from ecmptui.serve import guard
from ecmptui.serve.audit import Audit, Who
from ecmptui.serve.feed import Hub
from ecmptui.serve.session import EXIT_GRACE, DashboardSession, kill_tree, reap
from ecmptui.serve.settings import ServeConfig, ServerState

log = logging.getLogger("ecmptui.serve")


def load_host_key(path: Path) -> asyncssh.SSHKey:
    """The server's host key, generated once (0600) so clients can pin it; one that others
    may read or change is refused, as ssh does."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = asyncssh.generate_private_key("ssh-ed25519")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.export_private_key())
        log.info("generated host key %s (%s)", path, key.get_fingerprint())
    guard.check_trusted_file(path, "--host-key", private=True)
    try:
        return asyncssh.read_private_key(path)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise EcmpError(f"--host-key {path}: not a private key ({exc})") from exc


def read_keys(path: Path | None, what: str) -> dict[str, str]:
    """Fingerprint -> comment of every key in an authorized_keys-style file; read at every
    login (so a removed key is out at once), and empty if the file became unsafe."""
    if path is None:
        return {}
    try:
        guard.check_trusted_file(path, what)
        text = path.read_text()
    except (EcmpError, OSError) as exc:
        log.warning("ignoring %s: %s", what, exc)
        return {}
    keys = {}
    for line in text.splitlines():
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


class DashboardServer(asyncssh.SSHServer):
    """One SSH connection: authentication, its limits, and what it may open."""

    def __init__(self, state: ServerState) -> None:
        self.state, self.cfg = state, state.cfg
        self.conn: asyncssh.SSHServerConnection | None = None
        self.who = Who()
        self.failures = 0
        self.authenticated = False
        self.counted_unauth = False
        self.sessions = 0  # terminals asked for on this connection
        self.live = 0  # of those, running now
        self.started = time.monotonic()
        self._grace: asyncio.TimerHandle | None = None
        self._offered: tuple[str, str] | None = None  # (fingerprint, role) until verified
        self.method = "?"

    @property
    def ip(self) -> str:
        return self.who.source.rsplit(":", 1)[0]

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        peer = conn.get_extra_info("peername") or ("?", 0)
        self.who.source = f"{peer[0]}:{peer[1]}"
        blocked = self.state.penalties.blocked(self.ip)
        if blocked:
            self._refuse(
                f"source penalised for {blocked:.0f} s more after repeated authentication failures",
                repeat=True,
            )
            return
        from_here = self.state.unauth_by_source.get(self.ip, 0)
        if from_here >= self.cfg.max_startups_per_source:
            # one address cannot hold every startup slot; trying counts against it
            self.state.penalties.failed(self.ip)
            self._refuse(
                f"{from_here} connections from this address are still logging in "
                "(--max-startups-per-source)",
                repeat=True,
            )
            return
        if self.state.unauthenticated >= self.cfg.max_startups:
            self._refuse(
                f"{self.state.unauthenticated} connections are still logging in (--max-startups)",
                repeat=True,
            )
            return
        self.state.unauthenticated += 1
        self.state.unauth_by_source[self.ip] = from_here + 1
        self.counted_unauth = True
        self.state.audit.event("connect", self.who)
        # sshd's own choices only: a client offering only SHA-1 key exchange gets nothing
        conn.validate_public_key = self._verified(conn.validate_public_key)

    def _refuse(self, why: str, repeat: bool = False) -> None:
        if repeat:  # a flood from one address is one line per interval, with a count
            self.state.audit.repeated(("refused", self.ip, why[:20]), "refused", self.who, why=why)
        else:
            self.state.audit.event("refused", self.who, why=why)
        assert self.conn is not None
        self.conn.close()

    def _done_authenticating(self) -> None:
        if self.counted_unauth:
            self.counted_unauth = False
            self.state.unauthenticated -= 1
            left = self.state.unauth_by_source.get(self.ip, 1) - 1
            if left > 0:
                self.state.unauth_by_source[self.ip] = left
            else:
                self.state.unauth_by_source.pop(self.ip, None)

    def connection_lost(self, exc: Exception | None) -> None:
        admitted = self.counted_unauth or self.authenticated
        if self.counted_unauth and self.failures == 0:
            # it never even tried to log in (silent, or out of time): a penalty for its
            # address, as sshd's PerSourcePenalties noauth and grace-exceeded (a failed
            # attempt was counted already)
            self.state.penalties.failed(self.ip)
        self._done_authenticating()
        if self._grace is not None:
            self._grace.cancel()
        if admitted:
            self.state.audit.event(
                "disconnect",
                self.who,
                duration_s=round(time.monotonic() - self.started, 1),
                reason=str(exc) if exc else "closed",
            )
        self.state.penalties.prune()

    def begin_auth(self, username: str) -> bool:
        self.who.user = username
        return True  # no anonymous ("none") login, ever

    def _failed(self, method: str, why: str) -> float:
        """Count a failed attempt; the seconds to wait before answering it."""
        self.failures += 1
        source_failures = self.state.penalties.recent(self.ip)
        penalised = self.state.penalties.failed(self.ip)
        self.state.audit.event(
            "auth-failure", self.who, method=method, why=why, attempt=self.failures
        )
        if self.failures >= guard.MAX_AUTH_TRIES or penalised:
            why = (
                "too many authentication failures"
                if not penalised
                else "source penalised after repeated authentication failures"
            )
            self.state.audit.event("refused", self.who, why=why)
            assert self.conn is not None
            self.conn.disconnect(asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE, why)
            return 0.0
        return guard.failure_delay(self.failures, source_failures)

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        """Is the key listed? Its role is bound only once a signature by it verifies
        (`_verified`): presenting a public key proves nothing."""
        fp = key.get_fingerprint()
        if fp in read_keys(self.cfg.operators, "--operators"):
            role = "operator"
        elif fp in read_keys(self.cfg.authorized_keys, "--authorized-keys"):
            role = "viewer"
        else:
            self.who.fingerprint = fp
            self._failed("publickey", "key not listed")
            self.who.fingerprint = "-"
            return False
        self._offered = (fp, role)
        return True

    def _verified(self, check: Any) -> Any:
        """asyncssh's check of a publickey request, which also verifies its signature:
        the role is bound when the signature verifies, and a bad one is a failure (logged
        with the key presented, without its role)."""

        async def checked(username: str, key_data: bytes, msg: bytes, signature: bytes) -> bool:
            ok = await check(username, key_data, msg, signature)
            if msg and self._offered is not None:  # a signed request, of a listed key
                fp, role = self._offered
                self._offered = None
                if ok:
                    self.who.fingerprint, self.who.role, self.method = fp, role, "publickey"
                else:
                    self.who.fingerprint = fp
                    delay = self._failed("publickey", "signature does not verify")
                    self.who.fingerprint = "-"
                    if delay:
                        await asyncio.sleep(delay)
            return ok

        return checked

    def password_auth_supported(self) -> bool:
        return self.cfg.demo_password is not None

    def kbdint_auth_supported(self) -> bool:
        return False  # keyboard-interactive is not offered (it would be a password prompt)

    async def validate_password(self, username: str, password: str) -> bool:
        ok = self.cfg.demo_password is not None and hmac.compare_digest(
            password.encode(), self.cfg.demo_password.encode()
        )
        if ok:
            self.who.role, self.who.fingerprint, self.method = "viewer", "password", "password"
            return True
        delay = self._failed("password", "wrong password")
        if delay:
            await asyncio.sleep(delay)
        return False

    def auth_completed(self) -> None:
        self._done_authenticating()
        self.authenticated = True
        self.state.audit.event("auth-success", self.who, method=self.method)
        # a connection that opens no terminal (ssh -N, a tunnel attempt) does not linger
        self._grace = asyncio.get_running_loop().call_later(self.cfg.login_grace, self._no_session)

    def _no_session(self) -> None:
        if self.live == 0 and self.conn is not None:
            what = "no terminal session" if self.sessions == 0 else "no live session left"
            self._refuse(f"{what} within {self.cfg.login_grace:.0f} s")

    def session_over(self) -> None:
        """A terminal of this connection ended or was refused: a connection with none left
        is closed (after a moment, so its last words reach the client)."""
        if self.live == 0 and self.conn is not None:
            if self._grace is not None:
                self._grace.cancel()
            self._grace = asyncio.get_running_loop().call_later(1.0, self._no_session)

    def session_requested(self) -> asyncssh.SSHServerSession:
        return DashboardSession(self)

    # -- everything else is refused, and logged ----------------------------------------------
    def _forward_refused(self, kind: str, dest: str) -> bool:
        self.state.audit.event("refused", self.who, why=f"{kind} forwarding", to=dest)
        return False

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> bool:
        return self._forward_refused("port", f"{dest_host}:{dest_port}")

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        return self._forward_refused("remote port", f"{listen_host}:{listen_port}")

    def unix_connection_requested(self, dest_path: str) -> bool:
        return self._forward_refused("unix socket", dest_path)

    def unix_server_requested(self, listen_path: str) -> bool:
        return self._forward_refused("remote unix socket", listen_path)


def modern_kex() -> list[str]:
    """The key exchanges OpenSSH 9.x offers by default that this asyncssh supports: no
    SHA-1 (diffie-hellman-group14-sha1, -group1-sha1, -group-exchange-sha1)."""
    from asyncssh.kex import get_kex_algs

    wanted = {
        b"sntrup761x25519-sha512@openssh.com",
        b"sntrup761x25519-sha512",
        b"mlkem768x25519-sha256",
        b"curve25519-sha256",
        b"curve25519-sha256@libssh.org",
        b"ecdh-sha2-nistp256",
        b"ecdh-sha2-nistp384",
        b"ecdh-sha2-nistp521",
        b"diffie-hellman-group-exchange-sha256",
        b"diffie-hellman-group16-sha512",
        b"diffie-hellman-group18-sha512",
        b"diffie-hellman-group14-sha256",
    }
    return [a.decode() for a in get_kex_algs() if a in wanted]


def check_files(cfg: ServeConfig) -> None:
    """Refuse to start with key files that are missing (when named) or unsafe."""
    if cfg.operators is not None:
        guard.check_trusted_file(cfg.operators, "--operators")
    if cfg.authorized_keys_given or cfg.authorized_keys.exists():
        guard.check_trusted_file(cfg.authorized_keys, "--authorized-keys")
    elif cfg.operators is None:
        raise EcmpError(
            f"no authorized keys: create {cfg.authorized_keys} (viewers) or pass --operators FILE"
        )


async def serve(cfg: ServeConfig, ready: asyncio.Event | None = None) -> None:
    check_files(cfg)
    host_key = load_host_key(cfg.host_key)
    audit = Audit(cfg.log_format)
    hub = Hub(cfg.settings, cfg.rate, audit) if cfg.settings is not None else None
    if hub is not None:
        hub.metrics = cfg.metrics
    state = ServerState(cfg, audit, hub)
    try:
        server = await asyncssh.create_server(
            lambda: DashboardServer(state),
            cfg.listen_host,
            cfg.listen_port,
            server_host_keys=[host_key],
            line_editor=False,
            encoding=None,
            allow_scp=False,
            agent_forwarding=False,
            x11_forwarding=False,
            login_timeout=cfg.login_grace,
            keepalive_interval=30,
            kbdint_auth=False,
            kex_algs=modern_kex(),
        )
    except OSError as exc:
        raise EcmpError(
            f"cannot listen on {cfg.listen_host}:{cfg.listen_port}: {exc.strerror}"
        ) from exc
    if hub is not None:
        await hub.start()
    audit.event(
        "listening",
        address=f"{cfg.listen_host}:{cfg.listen_port}",
        host_key=host_key.get_fingerprint(),
        viewers=cfg.max_viewers,
        operators=cfg.max_operators,
        password=cfg.demo_password is not None,
        rate=cfg.rate if hub else None,
    )
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
        for session in list(state.sessions):
            session.end("server shutdown", b"ecmptui: the server is shutting down\r\n")
        if state.sessions:
            state.all_ended.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.all_ended.wait(), EXIT_GRACE + 1)
        children = list(state.children)
        for pid in children:
            kill_tree(pid)
        await asyncio.gather(*(reap(pid) for pid in children))
        if hub is not None:
            await hub.stop()
        await server.wait_closed()
        audit.flush()
        audit.event(
            "stopped", address=f"{cfg.listen_host}:{cfg.listen_port}", sessions_ended=len(children)
        )
