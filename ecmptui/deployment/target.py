"""Target `metal`: any Metal-compatible endpoint, reached with the configured token.

The other adapters live with what they adapt: `static.StaticTarget` (servers listed in the
config) and the lab's `ecmptui.lab.target.LabTarget`. Everything else asks a target what it
supports (`caps`) or hands it the question (`label`, `open`, `probe_netns`, `routers`, ...);
only the composition root (`ecmptui.targets`) picks the adapter for a configuration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecmptui.deployment.inventory import ApiTarget
from ecmptui.deployment.port import Capabilities, TargetKind, Timing
from ecmptui.errors import EcmpError

if TYPE_CHECKING:
    from ecmptui.deployment.metal import ApiEndpoint


class MetalTarget(ApiTarget):
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
        return ApiEndpoint(
            s.metal.endpoint, s.metal.project_id, s.token, s.metal.ca_file, timeout=s.metal.timeout
        )
