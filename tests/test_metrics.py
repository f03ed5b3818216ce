"""The exporter's metrics: what is fed comes out of a real /metrics endpoint as Prometheus
parses it, `promtool check metrics` has nothing to say about it, and the shipped rules pass
`promtool check rules` and their unit tests (Debian's promtool, no lab)."""

from __future__ import annotations

import re
import socket
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import run_cli
from ecmptui.metrics.probe_metrics import MAX_LABEL_VALUES, ProbeMetrics
from ecmptui.metrics.server import MetricsServer, bind
from ecmptui.traffic.flows import FlowEvent
from ecmptui.traffic.model import ActionRecord
from ecmptui.traffic.samples import Sample
from fixed_data import status
from prom_tools import promtool

DOCS = Path(__file__).resolve().parent.parent / "docs" / "prometheus"


def scrape(metrics: ProbeMetrics) -> str:
    """The exposition, over HTTP from the server the commands run."""
    server = MetricsServer(metrics.registry, bind("127.0.0.1:0")).start()
    try:
        r = httpx.get(server.url, timeout=5)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        return r.text
    finally:
        server.stop()


def series(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value}, as Prometheus's parser reads the text."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float | None:
    return series(text).get((name, tuple(sorted(labels.items()))))


def fed() -> ProbeMetrics:
    """Metrics fed a little of everything: requests, flows, actions, a status."""
    m = ProbeMetrics("site1", target="lab")
    for i in range(30):
        m.observe(Sample(i * 0.01, "ecmp-node1", None, 2.0))
    for i in range(10):
        m.observe(Sample(i * 0.01, "ecmp-node2", None, 40.0))
    m.observe(Sample(1.0, None, "refused", 0.3))
    m.observe(Sample(1.1, None, "timeout", 1000.0))
    m.observe(Sample(1.2, None, "http_502", 3.0))
    m.flow(FlowEvent(0.0, 1, "open", "ecmp-node1"))
    m.flow(FlowEvent(0.0, 2, "open", "ecmp-node2"))
    m.flow(FlowEvent(1.0, 2, "break", "ecmp-node2", "reset"))
    m.flow(FlowEvent(1.1, 2, "moved", "ecmp-node1"))
    rec = ActionRecord(1.0, "ecmp-node2", "withdraw", outcome="done", settled=True)
    rec.convergence_ms, rec.failed, rec.fib_ms = 120.0, {"refused": 3, "timeout": 2}, 4.0
    m.action(rec)
    m.action(ActionRecord(2.0, "ecmp-node2", "kill-bird", outcome="failed: no SSH"))
    m.set_status(status())
    return m


def test_requests_are_counted_by_backend_and_outcome() -> None:
    text = scrape(fed())
    assert (
        value(
            text,
            "ecmptui_probe_requests_total",
            vantage="site1",
            backend="ecmp-node1",
            outcome="answered",
        )
        == 30
    )
    assert (
        value(
            text,
            "ecmptui_probe_requests_total",
            vantage="site1",
            backend="ecmp-node2",
            outcome="answered",
        )
        == 10
    )
    for outcome in ("refused", "timeout", "http_error"):
        assert (
            value(
                text, "ecmptui_probe_requests_total", vantage="site1", backend="", outcome=outcome
            )
            == 1
        )
    # latency in seconds: node2's 40 ms answers fall in the 0.05 bucket, not in 0.025
    le = {"vantage": "site1", "backend": "ecmp-node2"}
    assert value(text, "ecmptui_probe_latency_seconds_bucket", **le, le="0.025") == 0
    assert value(text, "ecmptui_probe_latency_seconds_bucket", **le, le="0.05") == 10
    assert value(text, "ecmptui_probe_latency_seconds_sum", **le) == pytest.approx(0.4)


def test_status_gauges_say_what_the_snapshot_says() -> None:
    text = scrape(fed())
    v = {"vantage": "site1"}
    # node1: every session up; node2 (Active): none, on both routers and both families
    for router, family in (
        ("169.254.255.1", "4"),
        ("169.254.255.2", "4"),
        ("fc00::e", "6"),
        ("fc00::f", "6"),
    ):
        up = dict(v, router=router, family=family)
        assert value(text, "ecmptui_bgp_session_up", node="ecmp-node1", **up) == 1
        assert value(text, "ecmptui_bgp_session_up", node="ecmp-node2", **up) == 0
    assert value(text, "ecmptui_node_announced", node="ecmp-node1", family="4", **v) == 1
    assert value(text, "ecmptui_node_announced", node="ecmp-node2", family="6", **v) == 0
    assert value(text, "ecmptui_node_health_up", node="ecmp-node2", **v) == 1
    assert value(text, "ecmptui_fabric_nexthops", family="4", **v) == 1
    assert value(text, "ecmptui_fabric_forwards", node="ecmp-node1", family="4", **v) == 1
    assert value(text, "ecmptui_fabric_forwards", node="ecmp-node2", family="4", **v) == 0
    assert value(text, "ecmptui_status_up", **v) == 1
    last = value(text, "ecmptui_node_last_answer_timestamp_seconds", node="ecmp-node1", **v)
    assert last is not None and last > 1e9


def test_a_node_withdrawn_and_a_missing_status_are_told() -> None:
    m = ProbeMetrics("here")
    m.set_status(status(withdrawn=True))
    text = scrape(m)
    assert value(text, "ecmptui_node_withdrawn", vantage="here", node="ecmp-node2") == 1
    assert value(text, "ecmptui_node_withdrawn", vantage="here", node="ecmp-node1") == 0
    m.set_status(None)  # the lab went away: no stale node series, and status_up says so
    text = scrape(m)
    assert value(text, "ecmptui_status_up", vantage="here") == 0
    assert "ecmptui_node_withdrawn{" not in text
    m.set_status(replace(status(), error="the API did not answer"))
    assert value(scrape(m), "ecmptui_status_up", vantage="here") == 0


def test_flows_and_actions() -> None:
    text = scrape(fed())
    v = {"vantage": "site1"}
    assert value(text, "ecmptui_flows_open", backend="ecmp-node1", **v) == 2  # 1, and 2 moved
    assert value(text, "ecmptui_flows_open", backend="ecmp-node2", **v) == 0
    assert value(text, "ecmptui_flows_broken_total", backend="ecmp-node2", **v) == 1
    assert value(text, "ecmptui_flows_moved_total", backend="ecmp-node1", **v) == 1
    a = dict(v, action="withdraw", node="ecmp-node2")
    assert value(text, "ecmptui_actions_total", source="operator", result="done", **a) == 1
    assert value(text, "ecmptui_action_failed_requests_total", **a) == 5
    assert value(text, "ecmptui_action_convergence_seconds_sum", **a) == pytest.approx(0.12)
    assert value(text, "ecmptui_action_fib_seconds_count", **a) == 1
    k = dict(v, action="kill-bird", node="ecmp-node2")
    assert value(text, "ecmptui_actions_total", source="operator", result="failed", **k) == 1
    assert value(text, "ecmptui_action_convergence_seconds_count", **k) is None


def test_label_values_are_bounded() -> None:
    """A server that answers with a new X-Served-By every time cannot grow the exposition
    without bound: after MAX_LABEL_VALUES backends the rest count as "other"."""
    m = ProbeMetrics("here")
    for i in range(MAX_LABEL_VALUES + 50):
        m.observe(Sample(0.0, f"evil-{i}", None, 1.0))
    text = scrape(m)
    backends = {
        dict(labels)["backend"]
        for (name, labels) in series(text)
        if name == "ecmptui_probe_requests_total"
    }
    assert len(backends) == MAX_LABEL_VALUES + 1
    assert (
        value(
            text,
            "ecmptui_probe_requests_total",
            vantage="here",
            backend="other",
            outcome="answered",
        )
        == 50
    )


def test_promtool_check_metrics_is_clean() -> None:
    proc = promtool("check", "metrics", stdin=scrape(fed()))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "" and proc.stderr.strip() == "", proc.stdout + proc.stderr


def test_promtool_finds_a_bad_exposition() -> None:
    """The check above can fail: a counter without `_total` is reported."""
    bad = "# HELP requests Requests\n# TYPE requests counter\nrequests 1\n"
    proc = promtool("check", "metrics", stdin=bad)
    assert 'counter metrics should have "_total" suffix' in proc.stdout + proc.stderr


def test_the_shipped_rules_are_valid_and_their_unit_tests_pass() -> None:
    proc = promtool("check", "rules", "ecmptui.rules.yml", cwd=DOCS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = promtool("test", "rules", "ecmptui.rules.test.yml", cwd=DOCS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    rules = (DOCS / "ecmptui.rules.yml").read_text()
    alerts = re.findall(r"^\s+- alert: (\w+)", rules, re.M)
    assert len(alerts) >= 4, alerts
    tests = (DOCS / "ecmptui.rules.test.yml").read_text()
    cases = re.findall(
        r"alertname: (\w+)\n\s+exp_alerts:(.*?)(?=\n\s+- eval_time|\n\s+- name|\n\s+promql|\Z)",
        tests,
        re.S,
    )
    for alert in alerts:
        outcomes = [body.strip().startswith("[]") for name, body in cases if name == alert]
        assert True in outcomes, f"{alert}: no case where it stays quiet"
        assert False in outcomes, f"{alert}: no case where it fires"


def test_scrape_config_names_the_rules_and_an_exporter() -> None:
    conf = (DOCS / "prometheus.yml").read_text()
    assert "ecmptui.rules.yml" in conf and ":9478" in conf
    proc = promtool("check", "config", "prometheus.yml", cwd=DOCS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_bad_metrics_flags_are_one_line_errors() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for args, words in (
            (["exporter", "--listen", "nowhere"], "expected HOST:PORT"),
            (["exporter", "--listen", f"127.0.0.1:{port}"], "Address already in use"),
            (["exporter", "--vantage", "a b"], "--vantage 'a b'"),
            (["--metrics-listen", "1.2.3.4:99999"], "expected HOST:PORT"),
            (
                ["probe", "--no-netns", "--metrics-listen", "x:y", "http://127.0.0.1:9/"],
                "expected HOST:PORT",
            ),
        ):
            proc = run_cli("--lab", "zz9", *args, timeout=30)
            assert proc.returncode == 2, (args, proc.stderr)
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1 and words in lines[0], (args, proc.stderr)
