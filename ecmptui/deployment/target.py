"""The kinds of target, in one place: what each one offers and how to reach it.

Three adapters share one shape: `LabTarget` (the embedded lab: a Metal-compatible API on this
machine, whose machines the lab owns), `MetalTarget` (any Metal-compatible endpoint) and
`StaticTarget` (servers listed in the config, no API). Everything else asks a target what it
supports (`caps`) or hands it the question (`label`, `open`, `probe_netns`, ...); nothing
else asks which kind it is.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ecmptui.actions import Action, available
from ecmptui.config import Settings
from ecmptui.errors import EcmpError
from ecmptui.node.host_key_policy import HostKeyPolicy

if TYPE_CHECKING:  # the lab and the API client load when first used
    from typing import TypeAlias

    from ecmptui.deployment.inventory import Deployment
    from ecmptui.deployment.metal import ApiEndpoint
    from ecmptui.deployment.static import StaticDeployment
    from ecmptui.lab.fibwatch import FibWatch
    from ecmptui.lab.instance import LabInstance

    AnyDeployment: TypeAlias = Deployment | StaticDeployment


class TargetKind(enum.Enum):
    LAB = "lab"
    METAL = "metal"
    STATIC = "static"


@dataclass(frozen=True)
class Capabilities:
    """What a target offers.

    - faults: the target owns the machines (lab faults, restore, BFD drills)
    - router_view: the core router's FIB can be read (next hops per EIP)
    - api: a provider API (provision, deprovision, reboot, the API's view of sessions)
    - read_only_default: the dashboard changes nothing unless the config says otherwise
    """

    faults: bool
    router_view: bool
    api: bool
    read_only_default: bool


@dataclass(frozen=True)
class Timing:
    """How a target's API is polled while provisioning (a real one takes minutes)."""

    poll: float
    active_timeout: float      # device created -> active
    verify_timeout: float      # configured -> sessions Established


def lab_label(name: str) -> str:
    """A lab deployment's name (also its writer lock's key: `lab down` takes that lock)."""
    return f"lab {name}"


class Target:
    """The adapter's shape; one subclass per kind."""

    kind: TargetKind
    caps: Capabilities

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def label(self) -> str:
        raise NotImplementedError

    def lock_key(self) -> str:
        """What names this deployment for its writer lock (the same for every operator)."""
        return self.label()

    def actions(self) -> list[Action]:
        return available(self.caps.faults, self.caps.api)

    def lab(self) -> LabInstance | None:
        """The lab instance behind this target (lab only)."""
        return None

    def lab_up(self) -> bool | None:
        """Whether the lab is up; None where there is no lab."""
        return None

    def start_lab(self, progress: Callable[[str], None] | None = None) -> str:
        raise EcmpError(f"target {self.kind.value}: there is no lab to start")

    def probe_netns(self) -> str | None:
        """The network namespace to probe the EIP from (None: this one)."""
        return None

    def fib_watch(self, eip: str | None) -> FibWatch | None:
        """Lab: a watcher of the forwarding router's route for the EIP (else None)."""
        return None

    def open(self) -> Deployment | StaticDeployment:
        """The deployment on this target (may need the lab up or the API reachable)."""
        raise NotImplementedError


class _ApiTarget(Target):
    """A target behind a Metal-compatible API."""

    timing: Timing

    def endpoint(self) -> ApiEndpoint:
        raise NotImplementedError

    def host_key_policy(self, endpoint: ApiEndpoint) -> HostKeyPolicy:
        return HostKeyPolicy("pin", self.settings.known_hosts_path)

    def open(self) -> Deployment:
        from ecmptui.deployment.inventory import Deployment

        return Deployment(self.settings, self)


class LabTarget(_ApiTarget):
    kind = TargetKind.LAB
    caps = Capabilities(faults=True, router_view=True, api=True, read_only_default=False)
    timing = Timing(poll=0.1, active_timeout=60.0, verify_timeout=20.0)

    def label(self) -> str:
        return lab_label(self.settings.lab)

    def lab(self) -> LabInstance:
        from ecmptui.lab.instance import LabInstance

        return LabInstance(self.settings.lab)

    def lab_up(self) -> bool:
        from ecmptui.lab import control

        return control.read_info(self.lab()) is not None

    def start_lab(self, progress: Callable[[str], None] | None = None) -> str:
        from ecmptui.lab import control

        info, _ = control.up(self.lab(), progress=progress)
        return f"lab {self.settings.lab} is up at {info.endpoint}"

    def endpoint(self) -> ApiEndpoint:
        from ecmptui.deployment.metal import ApiEndpoint
        from ecmptui.lab import control

        info = control.require_info(self.lab())
        return ApiEndpoint(info.endpoint, info.project_id, info.token(), info.ca_file,
                           info.known_hosts, self.settings.metal.timeout)

    def host_key_policy(self, endpoint: ApiEndpoint) -> HostKeyPolicy:
        # the lab publishes every machine's host key: nothing else is accepted
        return HostKeyPolicy("strict", Path(endpoint.known_hosts))

    def probe_netns(self) -> str:
        return self.lab().client_ns  # the EIP is routed only there

    def fib_watch(self, eip: str | None) -> FibWatch | None:
        from ecmptui.lab.fibwatch import FibWatch

        return FibWatch(self.lab().fabric_ns, eip) if eip else None


class MetalTarget(_ApiTarget):
    kind = TargetKind.METAL
    caps = Capabilities(faults=False, router_view=False, api=True, read_only_default=False)
    timing = Timing(poll=5.0, active_timeout=1800.0, verify_timeout=120.0)

    def label(self) -> str:
        return f"metal {self.settings.metal.endpoint}"

    def probe_netns(self) -> str | None:
        return self.settings.metal.probe_netns or None

    def lock_key(self) -> str:
        m = self.settings.metal
        return f"metal {m.endpoint} project {m.project_id} tag {self.settings.provision.tag}"

    def endpoint(self) -> ApiEndpoint:
        from ecmptui.deployment.metal import ApiEndpoint

        s = self.settings
        if not s.token:
            raise EcmpError("no API token: set METAL_AUTH_TOKEN (or PACKET_AUTH_TOKEN)")
        if not s.metal.project_id:
            raise EcmpError(f"{s.source}: metal.project_id: required for target metal")
        return ApiEndpoint(s.metal.endpoint, s.metal.project_id, s.token, s.metal.ca_file,
                           timeout=s.metal.timeout)


class StaticTarget(Target):
    kind = TargetKind.STATIC
    caps = Capabilities(faults=False, router_view=False, api=False, read_only_default=True)

    def label(self) -> str:
        return f"static ({len(self.settings.static.nodes)} nodes)"

    def lock_key(self) -> str:
        hosts = sorted(f"{n.host}:{n.port}" for n in self.settings.static.nodes)
        return "static " + ",".join(hosts)

    def probe_netns(self) -> str | None:
        return self.settings.static.probe_netns or None

    def open(self) -> StaticDeployment:
        from ecmptui.deployment.static import StaticDeployment

        return StaticDeployment(self.settings, self)


_KINDS: dict[str, type[Target]] = {"lab": LabTarget, "metal": MetalTarget,
                                   "static": StaticTarget}


def target_for(settings: Settings) -> Target:
    """The adapter for the configured target (cheap: nothing is contacted)."""
    return _KINDS[settings.target](settings)


def open_deployment(settings: Settings) -> Deployment | StaticDeployment:
    """The deployment for the configured target."""
    return target_for(settings).open()


def dashboard_read_only(settings: Settings) -> bool:
    """The dashboard's mode: the config's `read_only`, else the target's default."""
    if settings.read_only is not None:
        return settings.read_only
    return target_for(settings).caps.read_only_default
