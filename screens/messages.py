"""Messages: workers post their results to the app; screens post what the operator asked
for (the app handles them with `@on`, runs them once, and hands the new state down)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from ecmptui.deployment.status import DeploymentStatus
from ecmptui.deployment.steps import StepEvent


# -- results (workers -> app) ---------------------------------------------------------------
class StatusReady(Message):
    """A fresh `status` snapshot (or the error that prevented one)."""

    def __init__(
        self, status: DeploymentStatus | None, error: str | None = None, lab_down: bool = False
    ) -> None:
        super().__init__()
        self.status, self.error, self.lab_down = status, error, lab_down


class StepUpdate(Message):
    """Progress of provisioning or deprovisioning."""

    def __init__(self, event: StepEvent) -> None:
        super().__init__()
        self.event = event


class JobStarted(Message):
    """A provisioning-type job began (the Provision screen starts its checklist afresh)."""

    def __init__(self, job: str) -> None:
        super().__init__()
        self.job = job


class JobFinished(Message):
    """A provisioning-type job ended (ok or with an error line)."""

    def __init__(self, job: str, error: str | None = None, detail: str = "") -> None:
        super().__init__()
        self.job, self.error, self.detail = job, error, detail


class ChecksReady(Message):
    """Static target: what checking every node found (one dict per row of `check`)."""

    def __init__(self, results: list[dict[str, object]]) -> None:
        super().__init__()
        self.results = results


# -- requests (screens -> app) --------------------------------------------------------------
class NodeActionRequested(Message):
    """The operator asked for a node action of the registry on `node`."""

    def __init__(self, node: str, action: str) -> None:
        super().__init__()
        self.node, self.action = node, action


class DrainRequested(Message):
    """The operator asked to drain `node` (resilient ECMP: new connections elsewhere first)."""

    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node


class RouterActionRequested(Message):
    """The operator asked for a core router action (a fault, or restore)."""

    def __init__(self, router: str, action: str) -> None:
        super().__init__()
        self.router, self.action = router, action


@dataclass(frozen=True)
class ProvisionForm:
    """The Provision screen's fields."""

    nodes: int
    metro: str
    plan: str
    operating_system: str
    bfd: bool
    family: str = ""  # ipv4, ipv6 or dual; empty: the target's default
    daemon: str = ""  # bird, frr or a list taken in turn; empty: each node keeps its own


class ProvisionRequested(Message):
    """Provision with the form's values (on a target without an API: check the nodes)."""

    def __init__(self, form: ProvisionForm) -> None:
        super().__init__()
        self.form = form


class DeprovisionRequested(Message):
    """Delete what provisioning made (the app asks first)."""


class PauseToggled(Message):
    """Stop or resume probing."""


class FamilyToggled(Message):
    """Probe the EIP of the deployment's next address family (a dual stack has two)."""


class RateRequested(Message):
    """Probe at `rate` requests per second (clamped by the app)."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate


class Refused(Message):
    """A read-only view was asked to change something (`what`): the app says no."""

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what
