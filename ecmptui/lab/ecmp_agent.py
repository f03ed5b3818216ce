#!/usr/bin/python3
"""The lab fabric's resilient-ECMP agent (runs inside the fabric machine, standalone: only
the standard library and iproute2).

BIRD keeps deciding which servers are live and exports the EIP routes into kernel table 100;
no release of BIRD installs kernel nexthop objects, so this agent mirrors each route of that
table into a resilient next-hop group (`ip nexthop ... type resilient`) and points the EIP's
route in the main table at it (`nhid`). A removed server's buckets move at once, and only
its; a new server gets buckets as they go idle (or when the unbalanced timer fires).

Weights (a drain lowers one) come from /run/ecmptui-agent/weights.json: {"gateway": weight}.
"""

import json
import os
import select
import subprocess
import sys
import time

TABLE = "100"
CONF = "/etc/ecmptui/ecmp-agent.json"
WEIGHTS = "/run/ecmptui-agent/weights.json"
DEFAULTS = {"buckets": 128, "idle_timer": 60, "unbalanced_timer": 0}


def load(path, default):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return default


def ip_json(*args):
    out = subprocess.run(["ip", "-j", *args], capture_output=True, text=True).stdout
    try:
        return json.loads(out or "[]")
    except ValueError:
        return []


def wanted():
    """dst -> [(gateway, dev)] of every multipath (or single) route in table 100."""
    routes = {}
    for r in ip_json("route", "show", "table", TABLE):
        dst = r.get("dst", "")
        hops = [(h["gateway"], h["dev"]) for h in r.get("nexthops", []) if "gateway" in h]
        if "gateway" in r:
            hops.append((r["gateway"], r["dev"]))
        if dst and hops:
            routes[dst if "/" in dst else dst + "/32"] = sorted(hops)
    return routes


def nh_id(gateway):
    return 1000 + int(gateway.split(".")[2])


def group_id(dst):
    return 5000 + int(dst.split("/")[0].split(".")[3])


class Agent:
    def __init__(self):
        conf = {**DEFAULTS, **load(CONF, {})}
        self.args = (f"type resilient buckets {int(conf['buckets'])} idle_timer "
                     f"{int(conf['idle_timer'])} unbalanced_timer {int(conf['unbalanced_timer'])}")
        self.applied = {}
        self.weights_mtime = None
        self._ip = None

    def apply(self):
        weights = load(WEIGHTS, {})
        want = wanted()
        if any(d not in want for d in self.applied):
            # BIRD replaces a route by deleting and adding it: a route that is gone for a
            # moment must not cost its group (a new group would reshuffle every bucket)
            time.sleep(0.05)
            want = wanted()
        cmds = []
        for dst, hops in want.items():
            members, mine = [], []
            for gateway, dev in hops:
                mine.append(f"nexthop replace id {nh_id(gateway)} via {gateway} dev {dev}")
                weight = max(1, min(255, int(weights.get(gateway, 255))))
                members.append(f"{nh_id(gateway)},{weight}")
            state = (tuple(mine), tuple(members))
            if self.applied.get(dst) == state:
                continue
            cmds += mine
            cmds.append(f"nexthop replace id {group_id(dst)} group {'/'.join(members)} "
                        + self.args)
            cmds.append(f"route replace {dst} nhid {group_id(dst)} proto static")
            self.applied[dst] = state
        for dst in [d for d in self.applied if d not in want]:
            cmds.append(f"route del {dst} proto static")
            cmds.append(f"nexthop del id {group_id(dst)}")
            del self.applied[dst]
        if cmds:
            self.batch("\n".join(cmds) + "\n")
            print(f"{time.time():.6f} applied {len(cmds)} change(s)", flush=True)

    def batch(self, text):
        """One long-running `ip -batch` takes the commands (no process start per change)."""
        if self._ip is None or self._ip.poll() is not None:
            self._ip = subprocess.Popen(["ip", "-force", "-batch", "-"], stdin=subprocess.PIPE,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        text=True, bufsize=1)
        pipe = self._ip.stdin
        try:
            assert pipe is not None
            pipe.write(text)
            pipe.flush()
        except OSError:
            self._ip = None

    def weights_changed(self):
        try:
            mtime = os.stat(WEIGHTS).st_mtime_ns
        except OSError:
            mtime = None
        changed = mtime != self.weights_mtime
        self.weights_mtime = mtime
        return changed


def main():
    agent = Agent()
    # every route change wakes us (ours too: applying the same state again is a no-op)
    monitor = subprocess.Popen(["ip", "monitor", "route"], stdout=subprocess.PIPE)
    assert monitor.stdout is not None
    fd = monitor.stdout.fileno()
    agent.apply()
    agent.weights_changed()
    while True:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            if not os.read(fd, 65536):
                return 1  # ip monitor ended: systemd starts us again
            while select.select([fd], [], [], 0)[0]:  # a burst of changes: apply once
                if not os.read(fd, 65536):
                    break
            agent.apply()
        elif agent.weights_changed():
            agent.apply()


if __name__ == "__main__":
    sys.exit(main())
