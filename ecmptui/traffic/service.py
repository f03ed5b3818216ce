"""The service end to end: does the EIP answer from where the prober stands, and does the
router forward to every node that says it announces? (`check` and provisioning's final
verification: a node's own view can be all green while nobody reaches the service.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from ecmptui.family import Family
from ecmptui.jsonish import JsonObject
from ecmptui.traffic.probe_stream import probe_argv
from ecmptui.waits import scaled

if TYPE_CHECKING:
    from ecmptui.deployment.port import Deployment
    from ecmptui.deployment.records import Inventory
    from ecmptui.deployment.status import DeploymentStatus

PROBE_RATE = 50.0  # requests/s for one second: enough to see every backend of 16
PROBE_S = 1.0


@dataclass
class ServiceCheck:
    """The verdict, with what it rests on (`answers`: by backend, as the prober saw)."""

    url: str
    netns: str | None
    family: int = 4  # the EIP's address family
    label: str = "service"  # "service", or "service ipv6" beside IPv4 on a dual stack
    requests: int = 0
    failed: int = 0
    answers: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def row(self) -> JsonObject:
        """The check's row, beside one per node (`display.check_line` words it)."""
        return {
            "kind": "service",
            "name": self.label,
            "host": self.url,
            "ok": self.ok,
            **{k: v for k, v in asdict(self).items() if k not in ("url", "label")},
            "url": self.url,
        }


async def probe_once(url: str, netns: str | None) -> JsonObject:
    """One second of the real prober from its vantage point; its JSON summary."""
    argv = probe_argv(url, PROBE_RATE, min(5.0, scaled(1.0)), netns, duration=PROBE_S, summary=True)
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), PROBE_S + scaled(20.0))
    if proc.returncode != 0:
        raise RuntimeError(
            (
                err.decode(errors="replace").strip().splitlines()
                or [f"prober exited with code {proc.returncode}"]
            )[-1]
        )
    return json.loads(out)


async def service_check(d: Deployment, st: DeploymentStatus) -> list[ServiceCheck]:
    """Per family the deployment serves: probe its EIP for a second from the probe's vantage
    point and compare the router's next hops with the nodes (no change is made)."""
    from ecmptui.deployment.records import Inventory

    inv = Inventory(st.target, st.eip, None, [], st.eip6)
    checks = []
    for family in inv.families:
        check = await _family_check(d, inv, family, len(inv.eips) > 1)
        check.problems += st.fabric_problems(family.value)
        checks.append(check)
    return checks


async def _family_check(d: Deployment, inv: Inventory, family: Family, dual: bool) -> ServiceCheck:
    url, netns = d.probe_target(inv, family)
    res = ServiceCheck(url, netns, family.value, f"service {family.api}" if dual else "service")
    try:
        summary = await probe_once(url, netns)
    except (RuntimeError, OSError, ValueError, TimeoutError) as exc:
        res.problems.append(f"could not probe {url}: {exc}")
    else:
        res.requests, res.failed = int(summary["requests"]), int(summary["failed"])
        res.answers = dict(summary["by_backend"])
        if res.requests == 0 or res.failed:
            errors = ", ".join(f"{k} {v}" for k, v in summary.get("errors", {}).items())
            res.problems.append(
                f"{url}: {res.failed} of {res.requests} requests failed"
                + (f" ({errors})" if errors else "")
            )
    return res


async def check(d: Deployment, warn: Callable[[str], None] | None = None) -> list[JsonObject]:
    """`ecmptui check`: one row per node (over SSH) and, when something is provisioned,
    the service's row (end to end). Changes nothing; through an API outage it checks the
    nodes of the last inventory (`warn` says so)."""
    from ecmptui.deployment.gather import gather
    from ecmptui.deployment.static import check_all

    rows = [c.row() for c in await check_all(d, warn)]
    st = await gather(d)
    rows += [c.row() for c in await service_check(d, st)]
    return rows


async def verify(d: Deployment) -> tuple[bool, str]:
    """Provisioning's last step: (ok, what was seen), end to end."""
    from ecmptui.deployment.gather import gather
    from ecmptui.display import check_line

    rows = [c.row() for c in await service_check(d, await gather(d))]
    if not rows:
        return False, "no EIP to probe"
    return all(r["ok"] for r in rows), "; ".join(check_line(r) for r in rows)
