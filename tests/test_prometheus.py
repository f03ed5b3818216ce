"""A real Prometheus (Debian's, run by the test on 127.0.0.1) scrapes ecmptui exporters at
three vantage points of the session's lab: the client and two sites of `lab up --vantages`.
What it stores is what happened: both backends answer every vantage, a withdraw takes the
node's share to 0 everywhere and its withdrawn gauge to 1, the shipped rules evaluate."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Deployed, run_cli, status, wait_for
from ecmptui.lab.control import LabInfo
from ecmptui.waits import scaled
from prom_tools import Prometheus, promtool

pytestmark = pytest.mark.lab
DOCS = Path(__file__).resolve().parent.parent / "docs" / "prometheus"
VANTAGES = ("client", "site1", "site2")


class Exporter:
    """`ecmptui exporter` as a process of its own; its address read from its first line."""

    def __init__(self, cfg: Path, vantage: str, workdir: Path) -> None:
        self.log_path = workdir / f"exporter-{vantage}.log"
        self.log = open(self.log_path, "wb")  # closed in stop()
        args = ["--config", str(cfg), "exporter", "--listen", "127.0.0.1:0", "--rate", "50"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ecmptui", *args, "--vantage", vantage],
            stdout=self.log,
            stderr=self.log,
            cwd="/",
            start_new_session=True,
        )
        self.address = wait_for(self._address, scaled(30), 0.1)
        assert self.address, self.log_path.read_text()

    def _address(self) -> str | None:
        m = re.search(r"metrics at http://(127\.0\.0\.1:\d+)/metrics", self.log_path.read_text())
        return m.group(1) if m else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=scaled(20))
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def watched(
    lab: LabInfo, deployed: Deployed, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Prometheus, list[Exporter]]]:
    cfg, _ = deployed
    run_cli("--config", str(cfg), "lab", "up", "--vantages", "2", check=True)
    work = tmp_path_factory.mktemp("prometheus")
    exporters: list[Exporter] = []
    try:
        for v in VANTAGES:
            exporters.append(Exporter(cfg, "client" if v == "client" else v, work))
        rules = [DOCS / "ecmptui.rules.yml"]
        with Prometheus(work / "prom", [e.address for e in exporters], rules) as prom:
            yield prom, exporters
    finally:
        for e in exporters:
            e.stop()


def answers(prom: Prometheus, window: str = "4s") -> dict[tuple[str, str], float]:
    """Answers per second by (vantage, backend) over the last `window`, from Prometheus."""
    expr = (
        "sum by (vantage, backend) "
        f'(rate(ecmptui_probe_requests_total{{outcome="answered"}}[{window}]))'
    )
    return {
        (s["metric"]["vantage"], s["metric"]["backend"]): float(s["value"][1])
        for s in prom.query(expr)
    }


def every_vantage(rates: dict[tuple[str, str], float], backend: str, pred: Any) -> bool:
    return all(pred(rates.get((v, backend), 0.0)) for v in VANTAGES)


def test_every_vantage_is_scraped_and_sees_both_backends(
    deployed: Deployed, watched: tuple[Prometheus, list[Exporter]]
) -> None:
    prom, exporters = watched
    ok = wait_for(lambda: set(prom.targets_up().values()) == {"up"}, scaled(30), 0.5)
    assert ok, prom.targets_up()
    rates = wait_for(
        lambda: (
            (r := answers(prom))
            and all(every_vantage(r, b, lambda x: x > 5) for b in ("tnode1", "tnode2"))
            and r
        ),
        scaled(40),
        0.5,
    )
    assert rates, answers(prom)
    # the BGP sessions as the nodes say them, per router and family, at every vantage
    st = status(deployed[0])
    expected = sum(p["bgp_state"] == "Established" for n in st["nodes"] for p in n["peers"])
    for v in VANTAGES:
        up = prom.query(f'sum(ecmptui_bgp_session_up{{vantage="{v}"}})')
        assert float(up[0]["value"][1]) == expected, (v, up)
        running = prom.query(f'ecmptui_prober_running{{vantage="{v}"}}')
        assert float(running[0]["value"][1]) == 1


def test_a_withdraw_takes_the_backends_share_to_zero_everywhere(
    deployed: Deployed, watched: tuple[Prometheus, list[Exporter]]
) -> None:
    prom, _ = watched
    cfg, _ = deployed
    assert wait_for(
        lambda: every_vantage(answers(prom), "tnode2", lambda x: x > 5), scaled(40), 0.5
    ), answers(prom)
    run_cli("--config", str(cfg), "node", "withdraw", "tnode2", check=True)
    try:
        gone = wait_for(
            lambda: (
                (r := answers(prom, "3s"))
                and every_vantage(r, "tnode2", lambda x: x == 0)
                and every_vantage(r, "tnode1", lambda x: x > 5)
            ),
            scaled(40),
            0.5,
        )
        assert gone, answers(prom, "3s")
        # the status gauges follow at the exporters' poll (every 10 s) and the next scrape
        withdrawn = 'ecmptui_node_withdrawn{node="tnode2"}'
        assert wait_for(
            lambda: prom.values(withdrawn, "vantage") == dict.fromkeys(VANTAGES, 1.0),
            scaled(30),
            0.5,
        ), prom.values(withdrawn, "vantage")
        # the fabric no longer forwards to it, as every vantage's exporter reads it
        fwd = 'max by (vantage) (ecmptui_fabric_forwards{node="tnode2"})'
        assert wait_for(
            lambda: prom.values(fwd, "vantage") == dict.fromkeys(VANTAGES, 0.0), scaled(30), 0.5
        ), prom.values(fwd, "vantage")
    finally:
        run_cli("--config", str(cfg), "node", "announce", "tnode2", check=True)
    back = wait_for(
        lambda: every_vantage(answers(prom, "3s"), "tnode2", lambda x: x > 5), scaled(40), 0.5
    )
    assert back, answers(prom, "3s")


def test_the_shipped_rules_evaluate_on_the_real_series(
    watched: tuple[Prometheus, list[Exporter]],
) -> None:
    prom, _ = watched
    groups = httpx.get(f"{prom.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) >= 10
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]
    # each vantage's shares add up to 1 (a recording rule over the live data)
    shares = wait_for(
        lambda: (
            (q := prom.query("sum by (vantage) (ecmptui:backend_share:ratio1m)"))
            and len(q) == len(VANTAGES)
            and q
        ),
        scaled(30),
        0.5,
    )
    assert shares, prom.query("ecmptui:backend_share:ratio1m")
    for s in shares:
        assert float(s["value"][1]) == pytest.approx(1.0), s


def test_the_live_exposition_passes_promtool_and_holds_no_secret(
    lab: LabInfo, watched: tuple[Prometheus, list[Exporter]]
) -> None:
    _, exporters = watched
    text = httpx.get(f"http://{exporters[1].address}/metrics", timeout=10).text
    assert 'vantage="site1"' in text
    proc = promtool("check", "metrics", stdin=text)
    assert proc.returncode == 0 and not (proc.stdout + proc.stderr).strip(), proc.stdout
    assert lab.token() not in text


def test_probe_serves_metrics_from_inside_the_client_namespace(deployed: Deployed) -> None:
    """`probe --metrics-listen`: the socket is bound here (where Prometheus is) before the
    prober moves into the lab's client namespace, and answers from there."""
    cfg, _ = deployed
    proc = subprocess.Popen(
        [sys.executable, "-m", "ecmptui", "--config", str(cfg), "probe", "--duration", "30"]
        + ["--rate", "50", "--metrics-listen", "127.0.0.1:0", "--vantage", "here"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd="/",
        start_new_session=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        m = re.search(r"metrics at (http://127\.0\.0\.1:\d+/metrics)", line)
        assert m, line

        def answered() -> float:
            text = httpx.get(m.group(1), timeout=5).text
            return sum(
                float(x)
                for x in re.findall(
                    r'ecmptui_probe_requests_total\{[^}]*outcome="answered"[^}]*\} (\S+)', text
                )
            )

        assert wait_for(lambda: answered() > 20, scaled(20), 0.5), answered()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=scaled(20))
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
