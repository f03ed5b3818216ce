"""The drill's HTML report, read by a real browser (Debian's Chromium, headless): the page
draws every scenario's chart with each backend's line and the failures, says which backend
answered, when each action happened and how many requests failed, fetches nothing and logs
no error."""

from __future__ import annotations

import re
from pathlib import Path

from browser import render
from ecmptui.report.chart import FAILED, PALETTE
from ecmptui.report.drill_report import drill_html
from ecmptui.traffic.drill import ScenarioResult
from ecmptui.traffic.samples import Sample
from ecmptui.traffic.series import Mark, from_samples


def withdraw_samples(t0: float, bad_name: str = "ecmp-node2") -> list[Sample]:
    """4 s at 200 req/s: both nodes answer, node2 goes at 0 s; 25 timeouts just after."""
    out = []
    for i in range(800):
        t = t0 - 2 + i / 200
        if i % 2 == 0 or t >= t0 + 0.3:
            out.append(Sample(t, "ecmp-node1", None, 2.0))
        elif t0 <= t < t0 + 0.3 and len([s for s in out if s.error]) < 25:
            out.append(Sample(t, None, "timeout", 1000.0))
        elif t < t0:
            out.append(Sample(t, bad_name, None, 2.5))
    return out


def result(name: str, node: str, samples: list[Sample], **kw: object) -> ScenarioResult:
    failed = sum(s.error is not None for s in samples)
    r = ScenarioResult(
        name,
        bool(kw.get("bfd", False)),
        True,
        node,
        180.0,
        175.0,
        60.0,
        {"timeout": failed} if failed else {},
        {"ecmp-node1": 200, node: 200},
        {"ecmp-node1": 390},
        recovered=bool(kw.get("recovered", True)),
        requests=len(samples),
        notes=[str(kw["note"])] if "note" in kw else [],
        fib_ms=4.2,
        daemon="frr",
    )
    marks = [
        Mark(0.0, f"{name} {node}"),
        Mark(1.5, "restore", "restore"),
        Mark(0.0042, "FIB", "fib"),
    ]
    r.chart = from_samples(samples, 100.0, marks=marks)
    return r


def test_the_report_draws_every_scenario_in_chromium(tmp_path: Path) -> None:
    results = [
        result("withdraw", "ecmp-node2", withdraw_samples(100.0)),
        result("kill-bird", "ecmp-node2", withdraw_samples(100.0), bfd=True),
        result(
            "isolate",
            "ecmp-node2",
            withdraw_samples(100.0),
            recovered=False,
            note="status differs from before the scenario",
        ),
    ]
    results[0].flows = {"flows": 40, "on_node": 20, "affected": 20, "bystanders": 0, "moved": 20}
    path = tmp_path / "report.html"
    path.write_text(drill_html(results, 200, "lab"))
    html = path.read_text()
    # self-contained: nothing to fetch, nothing to run
    assert "<script" not in html.lower()
    assert re.findall(r"https?://[^\s\"']+", html) == ["http://www.w3.org/2000/svg"] * 3
    page = render(path, tmp_path, height=3200)
    assert page.page_errors() == [], page.page_errors()
    assert page.share_not_white() > 0.05
    # every scenario's chart, with a line per backend, drawn in their colours and the red
    # of the failed requests
    for i in (1, 2, 3):
        assert f'id="chart-{i}"' in page.dom
    assert page.dom.count('data-backend="ecmp-node1"') == 3
    assert page.dom.count('data-backend="ecmp-node2"') == 3
    assert page.has_colour(PALETTE[0]) and page.has_colour(PALETTE[1]) and page.has_colour(FAILED)
    # a person reads: who answered, when each action happened, how many failed
    text = re.sub(r"<[^>]+>", " ", page.dom)
    assert "withdraw ecmp-node2" in text and "restore" in text and "FIB" in text
    assert "0/0/25" in text  # refused/reset/timeout
    assert "ecmp-node1 390" in text  # answered by, during
    assert "ecmp-node2 (FRR)" in text
    assert "kill-bird with BFD" in text
    assert "NO" in text and "status differs" in text  # the one that did not recover
    assert "s from the action" in text


def test_names_are_escaped_not_run(tmp_path: Path) -> None:
    """A backend that calls itself <script> is text on the page, never an element."""
    evil = "<script>alert(1)</script>"
    r = result("withdraw", "ecmp-node2", withdraw_samples(100.0, bad_name=evil))
    path = tmp_path / "evil.html"
    path.write_text(drill_html([r], 200, "lab"))
    page = render(path, tmp_path)
    assert page.page_errors() == []
    assert "<script" not in page.dom.lower().replace("&lt;script", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.dom


def test_a_scenario_without_requests_says_so(tmp_path: Path) -> None:
    r = result("withdraw", "ecmp-node2", [])
    path = tmp_path / "empty.html"
    path.write_text(drill_html([r], 200, "lab"))
    page = render(path, tmp_path)
    assert "no requests were made" in page.dom and page.page_errors() == []


def test_series_buckets_by_send_time_and_drops_part_filled_ends() -> None:
    """100 req/s from -1.03 s to +0.98 s around the action: whole 0.25 s buckets only (a
    part-filled one at either end would draw a dip nobody saw), each answer and failure in
    the bucket of its send time."""
    t0 = 50.0
    samples = [
        Sample(t0 + k / 100, "a" if k < 0 else "b", "refused" if k == 10 else None, 1.0)
        for k in range(-103, 99)
    ]
    s = from_samples(samples, t0)
    assert (s.start, s.bucket_s, s.buckets) == (-1.0, 0.25, 7)  # -1.0 .. +0.75
    assert s.answers["a"] == [25, 25, 25, 25, 0, 0, 0]
    assert s.answers["b"] == [0, 0, 0, 0, 24, 25, 25]
    assert s.failed == [0, 0, 0, 0, 1, 0, 0]
    assert s.rate(s.answers["a"])[0] == 100.0
