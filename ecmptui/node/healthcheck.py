"""The node-side health check: withdraw the EIP when the local service fails, announce it
again when it recovers. Standard library only: provisioning copies this file to each node
and runs it there with the node's python3, independent of any dashboard.

    python3 healthcheck.py --config health.json    (run by the ecmptui-health unit)

Every `interval_ms` it GETs `url` (a new connection each time, `timeout_ms`); after `fall`
consecutive failures it runs the `switch`'s withdraw commands (BIRD: `birdc disable eip`;
FRR: `vtysh` removing the EIP's `network`; the BGP sessions stay up), after `rise`
consecutive successes its announce commands -- unless the operator withdrew the node (the
`withdrawn_flag` file exists); a family the operator withdrew alone (listed in
`withdrawn_families_file`) stays withdrawn. Transitions are logged with timestamps and written to
`state_file` as JSON. On SIGTERM it withdraws first if `withdraw_on_exit` is set; SIGUSR1
stops it without touching BIRD.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from typing import Any

DEFAULTS = {
    "url": "http://127.0.0.1/healthz",
    "interval_ms": 100,
    "timeout_ms": 200,
    "rise": 3,
    "fall": 3,
    "withdraw_on_exit": True,
    "switch": {
        "withdraw": [{"argv": ["birdc", "disable", "eip"], "family": None}],
        "announce": [{"argv": ["birdc", "enable", "eip"], "family": None}],
    },
    "withdrawn_families_file": "withdrawn-families",
    "state_file": "health.json",
    "log_file": "health.log",
    "withdrawn_flag": "withdrawn",
}


def check(url: str, timeout: float) -> str | None:
    """None if the service answered 2xx/3xx, else a short reason."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(
        parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout
    )
    try:
        conn.request(
            "GET",
            parts.path or "/",
            headers={"Connection": "close", "User-Agent": "ecmptui-health"},
        )
        status = conn.getresponse().status
        return None if 200 <= status < 400 else f"HTTP {status}"
    except OSError as exc:
        return type(exc).__name__
    finally:
        conn.close()


class Checker:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = {**DEFAULTS, **cfg}
        self.state = "up"  # the daemon announces at start; failures must prove otherwise
        self.since = time.time()
        self.transitions = 0
        self.ok_run = self.fail_run = 0
        self.last_error: str | None = None
        self.stopping = False

    def log(self, message: str) -> None:
        t = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) + f".{int(t % 1 * 1000):03d}"
        with open(self.cfg["log_file"], "a") as fh:
            fh.write(f"{stamp} {message}\n")

    def withdrawn_families(self) -> set[str]:
        try:
            with open(self.cfg["withdrawn_families_file"]) as fh:
                return set(fh.read().split())
        except OSError:
            return set()

    def switch(self, verb: str, quiet: bool = False) -> bool:
        """Run the switch's `verb` (withdraw, announce) commands; False if one failed.
        `quiet`: a failure is not logged (withdrawing again what is withdrawn may fail)."""
        held = self.withdrawn_families() if verb == "announce" else set()
        ok = True
        for entry in self.cfg["switch"][verb]:
            if entry.get("family") in held:
                continue  # the operator withdrew this family alone
            try:
                proc = subprocess.run(entry["argv"], capture_output=True, text=True, timeout=5)
            except (OSError, subprocess.TimeoutExpired) as exc:
                if not quiet:
                    self.log(f"{verb} failed: {exc}")
                ok = False
                continue
            if proc.returncode != 0:
                if not quiet:
                    self.log(f"{verb} failed: {(proc.stdout + proc.stderr).strip()[-200:]}")
                ok = False
        return ok

    def write_state(self) -> None:
        data = {
            "state": self.state,
            "since": self.since,
            "transitions": self.transitions,
            "last_error": self.last_error,
            "pid": os.getpid(),
            "updated": time.time(),
            "interval_ms": self.cfg["interval_ms"],
            "rise": self.cfg["rise"],
            "fall": self.cfg["fall"],
        }
        tmp = self.cfg["state_file"] + ".new"
        with open(tmp, "w") as fh:
            json.dump(data, fh)
        os.replace(tmp, self.cfg["state_file"])

    def transition(self, new: str, why: str) -> None:
        self.state, self.since = new, time.time()
        self.transitions += 1
        operator_withdrew = os.path.exists(self.cfg["withdrawn_flag"])
        if new == "down":
            self.switch("withdraw")
            self.log(f"DOWN after {self.cfg['fall']} failed checks ({why}): EIP withdrawn")
        elif operator_withdrew:
            self.log(
                f"UP after {self.cfg['rise']} good checks: EIP stays withdrawn "
                "(the operator withdrew this node)"
            )
        else:
            self.switch("announce")
            self.log(f"UP after {self.cfg['rise']} good checks: EIP announced")
        self.write_state()

    def step(self, error: str | None) -> None:
        if error is None:
            self.ok_run, self.fail_run = self.ok_run + 1, 0
            if self.state == "down" and self.ok_run >= self.cfg["rise"]:
                self.transition("up", "")
        else:
            self.fail_run, self.ok_run = self.fail_run + 1, 0
            self.last_error = error
            if self.state == "up" and self.fail_run >= self.cfg["fall"]:
                self.transition("down", error)

    def run(self, max_checks: int | None = None) -> None:
        interval = self.cfg["interval_ms"] / 1000
        timeout = self.cfg["timeout_ms"] / 1000
        self.log(
            f"started: {self.cfg['url']} every {self.cfg['interval_ms']} ms, "
            f"rise {self.cfg['rise']}, fall {self.cfg['fall']}"
        )
        self.write_state()
        next_t, n, last_write = time.monotonic(), 0, 0.0
        while not self.stopping and (max_checks is None or n < max_checks):
            self.step(check(self.cfg["url"], timeout))
            n += 1
            now = time.monotonic()
            if now - last_write >= 1.0:  # a heartbeat: `updated` shows the checker is alive
                if self.state == "down":
                    # a reload of the daemon's config (BIRD's `birdc configure`, FRR's
                    # frr-reload) announces again: keep a failed node withdrawn whoever
                    # reloads
                    self.switch("withdraw", quiet=True)
                self.write_state()
                last_write = now
            next_t += interval
            delay = next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_t = time.monotonic()  # never catch up with a burst of checks
        if self.stopping and self.cfg["withdraw_on_exit"]:
            self.switch("withdraw")
            self.state, self.since = "stopped", time.time()
            self.log("stopped: EIP withdrawn on the way out")
        else:
            self.state, self.since = "stopped", time.time()
            self.log("stopped")
        self.write_state()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="ecmptui node health check")
    ap.add_argument("--config", required=True)
    args = ap.parse_args(argv)
    with open(args.config) as fh:
        cfg = json.load(fh)
    checker = Checker(cfg)

    def stop(*_: Any) -> None:
        checker.stopping = True

    # ecmptui redeploying or turning checks off: leave the routing daemon alone
    def stop_quietly(*_: Any) -> None:
        checker.cfg["withdraw_on_exit"] = False
        checker.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGUSR1, stop_quietly)
    checker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
