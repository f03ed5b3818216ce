"""Debian's Prometheus and promtool for the monitoring tests: found where `.ci/setup --test`
unpacked them (or on PATH), and a real Prometheus server run as the test's own process, on
127.0.0.1, with a TSDB in a temporary directory."""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ecmptui.waits import scaled

UNPACKED = Path("/var/cache/ecmptui/tools/prometheus/usr/bin")
PORT_LOCK = Path("/tmp/ecmptui-test-ports.lock")  # several suites may pick ports at once


def tool(name: str) -> str:
    """The path of `prometheus` or `promtool` (a missing one fails the test: CI has them)."""
    found = shutil.which(name) or (str(UNPACKED / name) if (UNPACKED / name).exists() else None)
    if found is None:
        pytest.fail(f"{name} not found: run `bash .ci/setup --test` (Debian's prometheus)")
    return found


def promtool(*args: str, stdin: str | None = None, cwd: Path | None = None) -> Any:
    return subprocess.run(
        [tool("promtool"), *args], input=stdin, capture_output=True, text=True, cwd=cwd, timeout=60
    )


@contextlib.contextmanager
def _port_lock() -> Iterator[None]:
    with open(PORT_LOCK, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    """A Prometheus server scraping `targets` (HOST:PORT of ecmptui exporters, one job)
    every second, with `rule_files` loaded; stopped and its data removed on exit."""

    def __init__(
        self, workdir: Path, targets: list[str], rule_files: list[Path] | None = None
    ) -> None:
        self.dir, self.targets, self.rule_files = workdir, targets, list(rule_files or [])
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self.url = ""

    def _config(self) -> str:
        return json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(p) for p in self.rule_files],
                "scrape_configs": [
                    {"job_name": "ecmptui", "static_configs": [{"targets": self.targets}]}
                ],
            }
        )

    def __enter__(self) -> Prometheus:
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "prometheus.yml"
        conf.write_text(self._config())
        log = self._log = open(self.dir / "prometheus.log", "wb")  # closed on exit
        with _port_lock():  # held until it listens: no other test takes the same port
            for _ in range(5):
                port = _free_port()
                self.url = f"http://127.0.0.1:{port}"
                self.proc = subprocess.Popen(
                    [
                        tool("prometheus"),
                        f"--config.file={conf}",
                        f"--storage.tsdb.path={self.dir / 'data'}",
                        f"--web.listen-address=127.0.0.1:{port}",
                    ],
                    stdout=log,
                    stderr=log,
                    cwd=self.dir,
                )
                if self._ready():
                    return self
                self._stop()
        self._log.close()
        raise AssertionError(
            "prometheus did not start: " + (self.dir / "prometheus.log").read_text()[-2000:]
        )

    def _ready(self) -> bool:
        deadline = time.monotonic() + scaled(30)
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return False
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return True
            time.sleep(0.2)
        return False

    def _stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=scaled(15))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __exit__(self, *exc: object) -> None:
        self._stop()
        self._log.close()
        shutil.rmtree(self.dir / "data", ignore_errors=True)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector (`[{"metric": {...}, "value": [t, "v"]}]`)."""
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        r.raise_for_status()
        body = r.json()
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def values(self, expr: str, by: str) -> dict[str, float]:
        """An instant query as {label `by`: value}."""
        return {s["metric"].get(by, ""): float(s["value"][1]) for s in self.query(expr)}

    def targets_up(self) -> dict[str, str]:
        """Each scrape target's health: up, down or unknown."""
        r = httpx.get(f"{self.url}/api/v1/targets", timeout=10).json()
        return {t["scrapeUrl"]: t["health"] for t in r["data"]["activeTargets"]}
