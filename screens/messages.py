"""Messages workers post to the app with their results."""

from __future__ import annotations

from textual.message import Message

from ecmptui.deployment.status import DeploymentStatus
from ecmptui.deployment.steps import StepEvent


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


class JobFinished(Message):
    """A provisioning-type job ended (ok or with an error line)."""

    def __init__(self, job: str, error: str | None = None, detail: str = "") -> None:
        super().__init__()
        self.job, self.error, self.detail = job, error, detail
