"""The node health check as a systemd unit: deploy, start, stop, read its state. The checker
itself (`healthcheck.py`, standard library only) is copied to the node and runs there."""

from __future__ import annotations

import asyncio
import json
from importlib import resources

from ecmptui.family import url_host
from ecmptui.jsonish import JsonObject
from ecmptui.node.server import Layout, Node, NodeError

HEALTH_SCRIPT = "healthcheck.py"
HEALTH_UNIT = "ecmptui-health"
HEALTH_UNIT_FILE = f"/etc/systemd/system/{HEALTH_UNIT}.service"


def health_paths(lay: Layout) -> dict[str, str]:
    d = lay.state_dir
    return {
        "script": f"{d}/{HEALTH_SCRIPT}",
        "config": f"{d}/health-config.json",
        "state": f"{d}/health.json",
        "log": f"{d}/health.log",
    }


def health_unit(lay: Layout) -> str:
    """The checker as a service. `systemctl stop` (SIGTERM) withdraws the EIP on the way out:
    no check, no announcement. A crash is restarted; a clean exit is not."""
    paths = health_paths(lay)
    return (
        "[Unit]\nDescription=ecmptui health check (withdraws the EIP when nginx fails)\n"
        f"After={lay.bird_unit}.service {lay.frr_unit}.service {lay.nginx_unit}.service\n\n"
        "[Service]\n"
        f"ExecStart=/usr/bin/python3 {paths['script']} --config {paths['config']}\n"
        "Restart=on-failure\nRestartSec=1\n\n"
        "[Install]\nWantedBy=multi-user.target\n"
    )


def health_node_config(
    node: Node, settings: JsonObject, eips: list[str], daemon_config: str
) -> JsonObject:
    """The checker's settings on `node`: it checks the first EIP and switches all of them
    with the node's daemon (`daemon_config`: its config file, as now)."""
    paths = health_paths(node.layout)
    return {
        **settings,
        "url": f"http://{url_host(eips[0])}/healthz",
        "switch": node.daemon.health_switch(daemon_config, eips).to_json(),
        "state_file": paths["state"],
        "log_file": paths["log"],
        "withdrawn_flag": node.layout.withdrawn_flag,
        "withdrawn_families_file": node.layout.withdrawn_families_file,
    }


async def health_running(node: Node) -> bool:
    return await node.unit_active(HEALTH_UNIT)


async def start_health(node: Node) -> None:
    await node.systemctl("restart", HEALTH_UNIT)
    state = health_paths(node.layout)["state"]
    for _ in range(100):  # bounded: 5 s for the first state
        if await node.read(state):
            return
        await asyncio.sleep(0.05)
    raise NodeError(f"{node.name}: the health check did not start")


async def stop_health(node: Node) -> None:
    """Stop the checker without touching the daemon (SIGUSR1: a clean exit, not restarted)."""
    await node.systemctl("kill", "-s", "USR1", "--kill-who=main", HEALTH_UNIT, check=False)
    for _ in range(60):  # bounded: 3 s
        if not await health_running(node):
            return
        await asyncio.sleep(0.05)
    await node.systemctl("kill", "-s", "KILL", HEALTH_UNIT, check=False)


async def apply_health(node: Node, settings: JsonObject | None, eips: list[str]) -> bool:
    """Deploy and (re)start the checker with `settings`, or remove it (None). Returns whether
    anything changed. Turning checks off re-announces the EIP unless the operator withdrew."""
    paths = health_paths(node.layout)
    running = await health_running(node)
    if settings is None:
        if not running:
            return False
        await stop_health(node)
        await node.systemctl("disable", "--quiet", HEALTH_UNIT, check=False)
        if not await node.withdrawn():
            await node.daemon.set_announced(node, True, eips)
        return True
    script = resources.files("ecmptui.node").joinpath(HEALTH_SCRIPT).read_text()
    daemon_config = await node.read(node.daemon.conf_path) or ""
    config = health_node_config(node, settings, eips, daemon_config)
    config_text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    unit = health_unit(node.layout)
    changed = False
    await node.run("mkdir", "-p", node.layout.state_dir)
    for path, text, mode in (
        (paths["script"], script, "0755"),
        (paths["config"], config_text, "0644"),
        (HEALTH_UNIT_FILE, unit, "0644"),
    ):
        if await node.read(path) != text:
            await node.write(path, text, mode)
            changed = True
    if changed:
        await node.systemctl("daemon-reload")
        await node.systemctl("enable", "--quiet", HEALTH_UNIT)
    if running and not changed:
        return False
    if running:
        await stop_health(node)
    await start_health(node)
    return True


async def health_state(node: Node) -> JsonObject | None:
    """The checker's state file (None when no checker was deployed), with `alive`."""
    text = await node.read(health_paths(node.layout)["state"])
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    data["alive"] = data.get("state") != "stopped" and await health_running(node)
    return data
