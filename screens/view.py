"""What the screens show, handed down by the app (state down): one immutable view per
change. Screens never reach into the app; what they ask for goes up as a message."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.text import Text

from ecmptui.config import ProvisionSettings
from ecmptui.deployment.status import DeploymentStatus
from ecmptui.traffic.model import TrafficModel
from ecmptui.traffic.timeline import EventLog


@dataclass(frozen=True)
class DashboardView:
    """The dashboard's state at one moment (a new one whenever something changed)."""

    now: float = 0.0  # monotonic time of this view (the traffic's clock)
    wall: float = 0.0  # wall time of this view (what ages and stamps use)
    status: DeploymentStatus | None = None
    status_line: Text = field(default_factory=Text)  # how old the status is, any error
    empty: str = "waiting for the first status…"  # what to do next ("" when there is data)
    events: EventLog = field(default_factory=EventLog)
    events_seq: int = 0  # the log's newest line when this view was made (the log grows)
    traffic: TrafficModel = field(default_factory=TrafficModel)
    read_only: bool = False
    rate: float = 100.0
    paused: bool = False
    probe_state: str = "prober idle"
    target_label: str = ""
    project_label: str = "-"
    provisions: bool = True  # the target provisions (else: it checks configured nodes)
    job_running: bool = False
    lab_down: bool = False
    offered: frozenset[str] = frozenset()  # the node actions this target offers
    routers: bool = False  # the target shows its routers (router actions, drain)
    defaults: ProvisionSettings = field(default_factory=ProvisionSettings)

    def beside_traffic(self) -> tuple[object, ...]:
        """Everything but the traffic and the clock's fraction of a second (what the BGP and
        Provision screens show): a redraw when this changes, or a second has passed."""
        return (
            id(self.status), self.status_line.plain, self.empty, self.events_seq, int(self.wall),
            self.read_only, self.target_label, self.project_label, self.provisions,
            self.job_running, self.lab_down,
        )  # fmt: skip

    def ts(self, t: float) -> float:
        """A monotonic time of the traffic as wall time."""
        return self.wall - (self.now - t)
