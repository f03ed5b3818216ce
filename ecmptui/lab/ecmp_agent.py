#!/usr/bin/python3
"""The lab fabric's resilient-ECMP agent (runs inside the fabric machine, standalone: only
the standard library and iproute2).

BIRD keeps deciding which servers are live and exports the EIP routes into kernel table 100;
no release of BIRD installs kernel nexthop objects, so this agent mirrors each route of that
table into a resilient next-hop group (`ip nexthop ... type resilient`) and points the EIP's
route in the main table at it (`nhid`). A removed server's buckets move at once, and only
its; a new server gets buckets as they go idle (or when the unbalanced timer fires).

Weights (a drain lowers one) come from /run/ecmptui-agent/weights.json: {"gateway": weight}.

Nothing is taken on trust: after every change the kernel is read back, and once a second
the agent checks that its `ip -batch` helper lives and that the kernel still holds what BIRD
wants. A mismatch (a helper that died, or one whose cached link indexes went stale when a
server's link was re-created) is logged with the helper's own error, the helper restarted
and everything applied again. What the agent knows is in /run/ecmptui-agent/status.json.
"""

import fcntl
import ipaddress
import json
import os
import select
import subprocess
import sys
import time
from typing import Any

TABLE = "100"
CONF = "/etc/ecmptui/ecmp-agent.json"
WEIGHTS = "/run/ecmptui-agent/weights.json"
STATUS = "/run/ecmptui-agent/status.json"
DEFAULTS = {"buckets": 128, "idle_timer": 60, "unbalanced_timer": 0}
CHECK_EVERY = 1.0  # seconds between two checks of the helper and the kernel
FAILING_AFTER = 3  # failed attempts in a row before the status says "failing"


def load(path: str, default: Any) -> Any:
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return default


def log(message: str) -> None:
    print(f"{time.time():.6f} {message}", flush=True)


def ip_json(*args: Any) -> Any:
    out = subprocess.run(["ip", "-j", *args], capture_output=True, text=True).stdout
    try:
        return json.loads(out or "[]")
    except ValueError:
        return []


FAMILIES = ("-4", "-6")  # BIRD exports both families' EIP routes into table 100


def full(dst: Any) -> Any:
    """A route's destination as a prefix (`ip -j` leaves a host route's length out)."""
    return dst if "/" in dst else f"{dst}/{128 if ':' in dst else 32}"


def wanted() -> Any:
    """dst -> [(gateway, dev)] of every multipath (or single) route in table 100."""
    routes = {}
    for family in FAMILIES:
        for r in ip_json(family, "route", "show", "table", TABLE):
            dst = r.get("dst", "")
            hops = [(h["gateway"], h["dev"]) for h in r.get("nexthops", []) if "gateway" in h]
            if "gateway" in r:
                hops.append((r["gateway"], r["dev"]))
            if dst and hops:
                routes[full(dst)] = sorted(hops)
    return routes


def link_indexes() -> Any:
    """name -> ifindex of every link (from sysfs: no process)."""
    out = {}
    for name in os.listdir("/sys/class/net"):
        try:
            with open(f"/sys/class/net/{name}/ifindex") as fh:
                out[name] = fh.read().strip()
        except OSError:
            pass
    return out


def nh_id(gateway: Any) -> Any:
    """A server's next hop id: IPv4 1010+n (198.18.(10+n).2), IPv6 2000 + the low bits of
    its public address (2001:db8:ec:100::(2n+1))."""
    if ":" in gateway:
        return 2000 + (int(ipaddress.ip_address(gateway)) & 0x3FF)
    return 1000 + int(gateway.split(".")[2])


GROUPS = (5000, 10096)  # the ids of the agent's groups, one per EIP: IPv4 5000-5255, IPv6 6000+


def group_id(dst: Any) -> Any:
    address = dst.split("/")[0]
    if ":" in address:
        return 6000 + (int(ipaddress.ip_address(address)) & 0xFFF)
    return GROUPS[0] + int(address.split(".")[3])


def differences(desired: Any, actual: Any) -> Any:
    """The destinations whose kernel state is not the desired one (missing, other, stale)."""
    return sorted(
        {d for d, m in desired.items() if actual.get(d) != m}
        | {d for d in actual if d not in desired}
    )


def kernel_state() -> Any:
    """dst -> the state the kernel holds for it, in the shape `Agent.desired` builds."""
    nexthops = {n["id"]: n for n in ip_json("nexthop", "show") if "id" in n}
    out = {}
    static = [r for f in FAMILIES for r in ip_json(f, "route", "show", "proto", "static")]
    for r in static:
        dst, nhid = r.get("dst", ""), r.get("nhid")
        group = nexthops.get(nhid)
        if not dst or group is None or not GROUPS[0] <= nhid < GROUPS[1]:
            continue  # not one of ours
        members = []
        for m in group.get("group", []):
            member = nexthops.get(m.get("id"), {})
            members.append(
                (m.get("id"), member.get("gateway"), member.get("dev"), int(m.get("weight", 1)))
            )
        out[full(dst)] = tuple(sorted(members))
    return out


class Agent:
    def __init__(self) -> None:
        conf = {**DEFAULTS, **load(CONF, {})}
        self.args = (
            f"type resilient buckets {int(conf['buckets'])} idle_timer "
            f"{int(conf['idle_timer'])} unbalanced_timer {int(conf['unbalanced_timer'])}"
        )
        self.applied: dict[str, Any] = {}
        self.weights_mtime: int | None = None
        self._ip: subprocess.Popen[str] | None = None
        self.failures = 0  # failed attempts in a row
        self.restarts = 0  # helpers started after the first
        self.error = None
        self.since = time.time()
        self.state = "starting"
        self.next_check = 0.0
        self.links = link_indexes()

    # -- the desired state -----------------------------------------------------------------
    def desired(self, want: Any, weights: Any) -> Any:
        """dst -> sorted (nexthop id, gateway, dev, weight) of every member."""
        out = {}
        for dst, hops in want.items():
            out[dst] = tuple(
                sorted(
                    (nh_id(gw), gw, dev, max(1, min(255, int(weights.get(gw, 255)))))
                    for gw, dev in hops
                )
            )
        return out

    def apply(self, verify: Any = True) -> None:
        want = wanted()
        if any(d not in want for d in self.applied):
            # BIRD replaces a route by deleting and adding it: a route that is gone for a
            # moment must not cost its group (a new group would reshuffle every bucket)
            time.sleep(0.05)
            want = wanted()
        desired = self.desired(want, load(WEIGHTS, {}))
        links = link_indexes()
        if links != self.links:
            # `ip` caches link indexes: a server's link re-created under the same name
            # would get "Invalid device index" from a helper that knew the old one
            if self._ip is not None:
                self.restart_helper(resend=False)
            self.links = links
        cmds = []
        for dst, members in desired.items():
            if self.applied.get(dst) == members:
                continue
            cmds += [f"nexthop replace id {nid} via {gw} dev {dev}" for nid, gw, dev, _ in members]
            cmds.append(
                f"nexthop replace id {group_id(dst)} group "
                + "/".join(f"{nid},{w}" for nid, _, _, w in members)
                + " "
                + self.args
            )
            cmds.append(f"route replace {dst} nhid {group_id(dst)} proto static")
            self.applied[dst] = members
        for dst in [d for d in self.applied if d not in desired]:
            cmds.append(f"route del {dst} proto static")
            cmds.append(f"nexthop del id {group_id(dst)}")
            del self.applied[dst]
        if cmds:
            self.batch("\n".join(cmds) + "\n")
            log(f"applied {len(cmds)} change(s)")
        if verify and (cmds or self.state != "ok") and not self.verify(desired):
            self.apply(verify=False)  # a fresh helper takes everything again, at once
            self.verify()

    def verify(self, desired: Any = None) -> bool:
        """Read the kernel back; a mismatch restarts the helper and applies everything again."""
        if desired is None:
            desired = self.desired(wanted(), load(WEIGHTS, {}))
        deadline = time.monotonic() + 0.5  # the helper works asynchronously: let it finish
        while True:
            wrong = differences(desired, kernel_state())
            if not wrong:
                self.ok()
                return True
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        errors = self.helper_errors()
        self.fail(
            f"kernel does not hold {', '.join(wrong)} as BIRD wants"
            + (f" (ip: {errors})" if errors else "")
        )
        return False

    def ok(self) -> None:
        if self.state != "ok":
            if self.state in ("retrying", "failing"):
                log(f"recovered after {self.failures} failed attempt(s)")
            self.state, self.error, self.since, self.failures = "ok", None, time.time(), 0
            self.write_status()

    def fail(self, why: Any) -> None:
        self.failures += 1
        state = "failing" if self.failures >= FAILING_AFTER else "retrying"
        if state != self.state:
            self.since = time.time()
        self.state, self.error = state, why
        log(
            f"error: {why}; restarting the ip helper and applying everything again "
            f"(attempt {self.failures})"
        )
        self.restart_helper()
        self.write_status()

    def restart_helper(self, resend: Any = True) -> None:
        if self._ip is not None and self._ip.poll() is None:
            self._ip.kill()
            self._ip.wait()
        self._ip = None
        if resend:
            self.applied = {}  # the kernel is the truth again: send everything

    def helper_errors(self) -> Any:
        """What the helper said on stderr since the last look (its own error messages)."""
        if self._ip is None or self._ip.stderr is None:
            return ""
        try:
            data = os.read(self._ip.stderr.fileno(), 65536)
        except (BlockingIOError, OSError):
            return ""
        lines = [ln.strip() for ln in data.decode(errors="replace").splitlines() if ln.strip()]
        return "; ".join(dict.fromkeys(lines))[:300]

    def batch(self, text: str) -> None:
        """One long-running `ip -batch` takes the commands (no process start per change)."""
        if self._ip is None or self._ip.poll() is not None:
            if self._ip is not None:
                log(f"ip helper exited with code {self._ip.returncode}; starting a new one")
                self.restarts += 1
            self._ip = subprocess.Popen(
                ["ip", "-force", "-batch", "-"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                bufsize=1,
            )
            assert self._ip.stderr is not None
            fd = self._ip.stderr.fileno()
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
        pipe = self._ip.stdin
        try:
            assert pipe is not None
            pipe.write(text)
            pipe.flush()
        except OSError as exc:
            log(f"ip helper did not take the commands ({exc})")
            self.restart_helper()

    def check(self) -> None:
        """Once a second: the helper lives (else restart it) and the kernel holds what BIRD
        wants (else apply everything again)."""
        if self._ip is not None and self._ip.poll() is not None:
            log(
                f"ip helper exited with code {self._ip.returncode}; restarting it and "
                "applying everything again"
            )
            self.restarts += 1
            self.restart_helper()
            self.apply()
            if self.state == "ok":
                log("recovered: a new ip helper runs and the kernel holds what BIRD wants")
            self.write_status()
            return
        desired = self.desired(wanted(), load(WEIGHTS, {}))
        if differences(desired, kernel_state()):
            log("kernel differs from what BIRD wants; applying everything again")
            self.applied = {}
            self.apply()
        elif self.state != "ok":
            self.ok()
        self.write_status()

    def write_status(self) -> None:
        data = {
            "state": self.state,
            "error": self.error,
            "since": self.since,
            "failures": self.failures,
            "restarts": self.restarts,
            "pid": os.getpid(),
            "updated": time.time(),
            "groups": len(self.applied),
        }
        tmp = STATUS + ".new"
        try:
            with open(tmp, "w") as fh:
                json.dump(data, fh)
            os.replace(tmp, STATUS)
        except OSError as exc:
            log(f"cannot write {STATUS}: {exc}")

    def weights_changed(self) -> bool:
        try:
            mtime = os.stat(WEIGHTS).st_mtime_ns
        except OSError:
            mtime = None
        changed = mtime != self.weights_mtime
        self.weights_mtime = mtime
        return changed


def main() -> int | None:
    agent = Agent()
    # every route change wakes us (ours too: applying the same state again is a no-op)
    monitor = subprocess.Popen(["ip", "monitor", "route"], stdout=subprocess.PIPE)
    assert monitor.stdout is not None
    fd = monitor.stdout.fileno()
    agent.apply()
    agent.weights_changed()
    agent.write_status()
    while True:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            if not os.read(fd, 65536):
                log("ip monitor ended; exiting (systemd starts the agent again)")
                return 1
            while select.select([fd], [], [], 0)[0]:  # a burst of changes: apply once
                if not os.read(fd, 65536):
                    break
            agent.apply()
        elif agent.weights_changed():
            agent.apply()
        if time.monotonic() >= agent.next_check:
            agent.next_check = time.monotonic() + CHECK_EVERY
            agent.check()


if __name__ == "__main__":
    sys.exit(main())
