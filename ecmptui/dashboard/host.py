"""What the dashboard's parts need of the app: its live state and Textual's services."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from textual.message import Message
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.timer import Timer
from textual.worker import Worker

from ecmptui.cockpit import Cockpit, SampleStream
from ecmptui.deployment.status import DeploymentStatus
from ecmptui.traffic.model import TrafficModel
from ecmptui.traffic.timeline import EventLog

if TYPE_CHECKING:
    from ecmptui.metrics.probe_metrics import ProbeMetrics


class Dashboard(Protocol):
    """The app as its parts see it (`app.EcmpApp`)."""

    cockpit: Cockpit
    served: bool
    export_dir: str | None
    traffic: TrafficModel
    metrics: ProbeMetrics | None  # --metrics-listen: fed what the dashboard measures
    events: EventLog
    stream: SampleStream | None
    live: bool
    flows: int
    status: DeploymentStatus | None
    status_error: str | None
    lab_down: bool
    read_only: bool
    paused: bool
    rate: float
    probe_state: str
    project_label: str
    job_running: bool

    def clock(self) -> float: ...

    def wall(self) -> float: ...

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None: ...

    def run_worker(
        self,
        work: Any,
        name: str | None = "",
        group: str = "default",
        description: str = "",
        exit_on_error: bool = True,
        start: bool = True,
        exclusive: bool = False,
        thread: bool = False,
    ) -> Worker[Any]: ...

    def post_message(self, message: Message) -> bool: ...

    def set_timer(
        self,
        delay: float,
        callback: Callable[[], Any] | None = None,
        *,
        name: str | None = None,
        pause: bool = False,
    ) -> Timer: ...

    def set_interval(
        self,
        interval: float,
        callback: Callable[[], Any] | None = None,
        *,
        name: str | None = None,
        repeat: int = 0,
        pause: bool = False,
    ) -> Timer: ...

    def push_screen(
        self,
        screen: Any,
        callback: Any = None,
        wait_for_dismiss: bool = False,
        *,
        mode: str | None = None,
    ) -> Any: ...

    def get_screen(self, screen: Any, screen_class: Any = None) -> Screen[Any]: ...

    def refresh_bindings(self) -> None: ...

    def poll_status(self) -> None: ...

    def begin_polling(self) -> None: ...

    def call_from_thread(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...

    def show_status(self, st: DeploymentStatus | None, error: str | None = None) -> None: ...
