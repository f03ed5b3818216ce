"""Runs one node action of the registry (`ecmptui.actions`): the CLI's `node` commands, the
dashboard's buttons and palette, and the drills all come here."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

from ecmptui.actions import ACTIONS, ROUTER_ACTIONS, Action, Kind
from ecmptui.errors import EcmpError
from ecmptui.node import faults
from ecmptui.node.server import Node

if TYPE_CHECKING:
    from ecmptui.deployment.port import Deployment
    from ecmptui.deployment.records import NodeRecord

log = logging.getLogger(__name__)
NodeOpener = Callable[["NodeRecord"], AbstractAsyncContextManager[Node]]
DONE = {
    "withdraw": "stopped announcing the EIP (BGP session stays up)",
    "announce": "announcing the EIP again",
    "shutdown": "BGP session(s) shut down",
    "start": "BGP session(s) started",
}


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


async def on_node(node: Node, action: Action) -> str:
    """Run an SSH-level action (node, fault, restore) on an open node; its outcome."""
    if action.kind is Kind.FAULT:
        await faults.inject_fault(node, action.name)
        return f"fault {action.name} injected (undo: ecmptui node restore {node.name})"
    if action.kind is Kind.RESTORE:
        undone = await faults.restore(node)
        return f"restored ({', '.join(undone)})" if undone else "nothing to restore"
    steps = {
        "withdraw": node.withdraw,
        "announce": node.announce,
        "shutdown": node.shutdown,
        "start": node.start,
    }
    if action.kind is not Kind.NODE or action.name not in steps:
        raise EcmpError(f"{action.name} does not run over SSH")
    await steps[action.name]()
    return DONE[action.name]


async def perform_router(
    d: Deployment, router: str, name: str, on_effect: Callable[[float], None] | None = None
) -> str:
    """A router action (lab only): a fault on core1/core2, or restore. Its outcome."""
    if name not in ROUTER_ACTIONS:
        raise EcmpError(f"unknown router action {name!r} (one of {', '.join(ROUTER_ACTIONS)})")
    routers = d.target.routers()
    if routers is None:
        raise EcmpError("router faults are lab-only (the lab owns its routers)")

    log.debug("%s on router %s", name, router)
    if on_effect is not None:
        on_effect(time.monotonic())
    if name == "restore":
        undone = await asyncio.to_thread(routers.restore, router)
        return f"restored ({', '.join(undone)})" if undone else "nothing to restore"
    await asyncio.to_thread(routers.inject_fault, router, name)
    return f"fault {name} injected (undo: ecmptui router restore {router})"


async def perform(
    d: Deployment,
    rec: NodeRecord,
    name: str,
    *,
    opener: NodeOpener | None = None,
    on_effect: Callable[[float], None] | None = None,
    reboot_timeout: float = 90.0,
) -> str:
    """Run action `name` on node `rec`; returns its outcome (without the node's name).

    `on_effect(t)` gets the monotonic time just before the command that takes effect (after
    the SSH connection is set up), so measurements start at the action, not the click."""
    action = lookup(name)
    check_allowed(d, action)
    log.debug("%s on %s (%s)", name, rec.name, action.kind.value)
    if action.kind is Kind.DEVICE:
        if on_effect is not None:
            on_effect(time.monotonic())
        took = await d.reboot(rec, timeout=reboot_timeout)
        return f"rebooted; back (SSH up, BGP Established) after {took:.1f} s"
    async with (opener or d.node)(rec) as node:
        if on_effect is not None:
            on_effect(time.monotonic())
        outcome = await on_node(node, action)
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
