"""Runs one node action of the registry (`ecmptui.actions`): the CLI's `node` commands, the
dashboard's buttons and palette, and the drills all come here."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

from ecmptui.actions import ACTIONS, ROUTER_ACTIONS, Action, Kind, RouterAction
from ecmptui.errors import EcmpError
from ecmptui.family import Family
from ecmptui.node import faults

if TYPE_CHECKING:
    from ecmptui.deployment.port import Deployment
    from ecmptui.deployment.records import NodeRecord
    from ecmptui.node.server import Node

log = logging.getLogger(__name__)
NodeOpener = Callable[["NodeRecord"], AbstractAsyncContextManager["Node"]]


def lookup(name: str) -> Action:
    action = ACTIONS.get(name)
    if action is None:
        raise EcmpError(f"unknown action {name!r} (one of {', '.join(ACTIONS)})")
    return action


def check_allowed(d: Deployment, action: Action) -> None:
    """One clear line when the target does not offer `action`."""
    if action.lab_only and not d.target.caps.faults:
        raise EcmpError(
            "faults are lab-only (the lab owns its servers); on this target use "
            "node withdraw/announce or shutdown/start"
        )
    if action.kind is Kind.DEVICE and not d.target.caps.api:
        raise EcmpError(
            f"{action.name} needs the provider's API (target lab or metal); "
            f"this target is {d.target.kind.value}"
        )


async def on_node(node: Node, action: Action, family: Family | None = None) -> str:
    """Run an SSH-level action (node, fault, restore) on an open node, narrowed to one
    address family where asked; its outcome."""
    if family is not None:
        if action.run_family is None:
            raise EcmpError(
                f"{action.name} acts on the whole node: --family narrows "
                + ", ".join(a.name for a in ACTIONS.values() if a.run_family)
            )
        return await action.run_family(node, family)
    if action.run is None:
        raise EcmpError(f"{action.name} does not run over SSH")
    return await action.run(node)


def lookup_router(name: str) -> RouterAction:
    action = ROUTER_ACTIONS.get(name)
    if action is None:
        raise EcmpError(f"unknown router action {name!r} (one of {', '.join(ROUTER_ACTIONS)})")
    return action


async def perform_router(
    d: Deployment, router: str, name: str, on_effect: Callable[[float], None] | None = None
) -> str:
    """A router action (lab only): a fault on core1/core2, or restore. Its outcome."""
    action = lookup_router(name)
    routers = d.target.routers()
    if routers is None:
        raise EcmpError("router faults are lab-only (the lab owns its routers)")
    if router not in routers.names():
        raise EcmpError(f"no router {router!r} (routers: {', '.join(routers.names())})")
    log.debug("%s on router %s", name, router)
    if on_effect is not None:
        on_effect(time.monotonic())
    return await asyncio.to_thread(action.run, routers, router)


async def perform(
    d: Deployment,
    rec: NodeRecord,
    action: Action,
    *,
    opener: NodeOpener | None = None,
    on_effect: Callable[[float], None] | None = None,
    reboot_timeout: float = 90.0,
    family: Family | None = None,
) -> str:
    """Run `action` (looked up and allowed by the caller: `lookup`, `check_allowed`) on
    node `rec`; returns its outcome (without the node's name).

    `on_effect(t)` gets the monotonic time just before the command that takes effect (after
    the SSH connection is set up), so measurements start at the action, not the click."""
    log.debug("%s on %s (%s)", action.name, rec.name, action.kind.value)
    if action.kind is Kind.DEVICE:
        if on_effect is not None:
            on_effect(time.monotonic())
        took = await d.reboot(rec, timeout=reboot_timeout)
        return f"rebooted; back (SSH up, BGP Established) after {took:.1f} s"
    async with (opener or d.node)(rec) as node:
        if on_effect is not None:
            on_effect(time.monotonic())
        outcome = await on_node(node, action, family)
    if action.kind is Kind.RESTORE:
        outcome = await _restore_bfd(d, rec, outcome)
    return outcome


async def _restore_bfd(d: Deployment, rec: NodeRecord, outcome: str) -> str:
    """A drill that died left BFD changed on the node (its marker was undone): put back
    the BFD setting the drill found."""
    found = [m for m in faults.DRILL_BFD if m in outcome]
    if not found or d.client is None:
        return outcome
    from ecmptui.deployment.provision import set_bfd

    inv = await d.ainventory()
    bfd = faults.DRILL_BFD[found[0]]
    await set_bfd(d, inv, bfd, only=[rec])
    return outcome + f"; BFD back {'on' if bfd else 'off'} as before the drill"
