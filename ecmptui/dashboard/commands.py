"""The command palette's entries: the screens, the chart, export, the prober, the lab, the
jobs, and every action on every node and router (each posts the same request as its key)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from textual.app import SystemCommand
from textual.message import Message

from ecmptui.actions import ROUTER_ACTIONS
from ecmptui.cockpit import Cockpit
from ecmptui.deployment.status import DeploymentStatus
from ecmptui.limits import MAX_RATE, MIN_RATE
from ecmptui.screens.messages import (
    DeprovisionRequested,
    DrainRequested,
    NodeActionRequested,
    PauseToggled,
    RouterActionRequested,
)

SCREENS = (("provision", "Provision screen"), ("bgp", "BGP screen"), ("traffic", "Traffic screen"))


@dataclass(frozen=True)
class PaletteContext:
    """What the palette offers depends on."""

    cockpit: Cockpit
    status: DeploymentStatus | None
    read_only: bool
    served: bool
    lab_down: bool
    rate: float


@dataclass(frozen=True)
class PaletteHooks:
    """What the palette's entries do that is not a request message."""

    post: Callable[[Message], object]
    switch_mode: Callable[[str], object]
    zoom: Callable[[], None]
    export: Callable[[], object]
    edit_rate: Callable[[], None]
    start_lab: Callable[[], object]
    provision_from_form: Callable[[], None]


def palette(ctx: PaletteContext, do: PaletteHooks) -> Iterator[SystemCommand]:
    for mode, title in SCREENS:
        yield SystemCommand(title, f"Switch to the {title}", lambda m=mode: do.switch_mode(m))
    yield SystemCommand("Zoom the chart", "1, 5 or 15 minutes of traffic", do.zoom)
    if not ctx.served:  # it would write files on the server
        yield SystemCommand(
            "Export the timeline and the BGP log",
            "JSON lines and Markdown, for an incident report",
            do.export,
        )
    if ctx.read_only:
        return
    yield SystemCommand(
        "Pause or resume the prober",
        "Stop/start probing the EIP",
        lambda: do.post(PauseToggled()),
    )
    if ctx.cockpit.fixed_rate is None:
        yield SystemCommand(
            "Set the probe rate",
            f"now {ctx.rate:.0f}/s ({MIN_RATE:.0f}-{MAX_RATE:.0f})",
            do.edit_rate,
        )
    if ctx.lab_down:
        yield SystemCommand("Start the lab", "the same as `ecmptui lab up`", do.start_lab)
    if ctx.cockpit.provisions:
        yield SystemCommand(
            "Provision",
            "the guide's steps with the Provision screen's values",
            do.provision_from_form,
        )
        yield SystemCommand(
            "Deprovision",
            "delete the servers, the EIP and the key",
            lambda: do.post(DeprovisionRequested()),
        )
    else:
        yield SystemCommand(
            "Check nodes", "what each configured node looks like", do.provision_from_form
        )
    st = ctx.status
    for n in st.nodes if st else []:
        for a in ctx.cockpit.actions():
            yield SystemCommand(
                f"{a.title} {n.name}",
                a.help,
                lambda a=a.name, name=n.name: do.post(NodeActionRequested(name, a)),
            )
        if ctx.cockpit.target.caps.router_view:
            yield SystemCommand(
                f"Drain {n.name}",
                "new connections elsewhere, then withdraw (resilient ECMP)",
                lambda name=n.name: do.post(DrainRequested(name)),
            )
    for c in st.router.cores if st and st.router else []:
        for ra in ROUTER_ACTIONS.values():
            yield SystemCommand(
                f"{ra.title} router {c.name}",
                ra.help,
                lambda a=ra.name, r=c.name: do.post(RouterActionRequested(r, a)),
            )
