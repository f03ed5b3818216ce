"""The composition root for targets: the one place that maps a configuration's `target` to
its adapter (the lab's lives in `ecmptui.lab`, the others in `ecmptui.deployment`).

Each adapter loads when first picked: the dashboard starts without SSH or API libraries."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ecmptui.config import Settings

if TYPE_CHECKING:
    from ecmptui.deployment.port import Deployment, Target


def _lab(settings: Settings) -> Target:
    from ecmptui.lab.target import LabTarget

    return LabTarget(settings)


def _metal(settings: Settings) -> Target:
    from ecmptui.deployment.target import MetalTarget

    return MetalTarget(settings)


def _static(settings: Settings) -> Target:
    from ecmptui.deployment.static import StaticTarget

    return StaticTarget(settings)


ADAPTERS: dict[str, Callable[[Settings], Target]] = {
    "lab": _lab,
    "metal": _metal,
    "static": _static,
}


def target_for(settings: Settings) -> Target:
    """The adapter for the configured target (cheap: nothing is contacted)."""
    return ADAPTERS[settings.target](settings)


def open_deployment(settings: Settings) -> Deployment:
    """The deployment for the configured target."""
    return target_for(settings).open()


def dashboard_read_only(settings: Settings) -> bool:
    """The dashboard's mode: the config's `read_only`, else the target's default."""
    if settings.read_only is not None:
        return settings.read_only
    return target_for(settings).caps.read_only_default
