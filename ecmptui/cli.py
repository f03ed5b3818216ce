"""The `ecmptui` command: the TUI by default, and headless subcommands for operators."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable

from ecmptui import __version__
from ecmptui.errors import EcmpError
from ecmptui.lab.instance import DEFAULT_NAME, LabInstance


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad input as one line (exit 2) instead of a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _print_json(data: object) -> None:
    print(json.dumps(data, indent=2, sort_keys=False))


def _console():
    from rich.console import Console

    return Console(highlight=False)


# -- lab ---------------------------------------------------------------------------------


def cmd_lab_up(args: argparse.Namespace) -> int:
    from ecmptui.lab import control

    info, started = control.up(LabInstance(args.lab), port=args.port)
    if args.json:
        _print_json(info.public())
        return 0
    con = _console()
    con.print(f"[bold green]lab {args.lab!r} {'is up' if started else 'was already up'}[/]")
    con.print(f"  endpoint    https://{info.endpoint}")
    con.print(f"  project id  {info.project_id}")
    con.print(f"  token file  {info.token_file}")
    con.print(f"  CA file     {info.ca_file}")
    con.print(f"  client ns   {info.client_namespace}  (the EIP is reachable only from there)")
    return 0


def cmd_lab_down(args: argparse.Namespace) -> int:
    from ecmptui.lab import control

    found = control.down(LabInstance(args.lab))
    if found:
        print(f"lab {args.lab!r} is down: removed {len(found)} item(s): " + ", ".join(found[:6])
              + (", ..." if len(found) > 6 else ""))
    else:
        print(f"lab {args.lab!r} was not up; nothing to remove")
    return 0


def cmd_lab_status(args: argparse.Namespace) -> int:
    from ecmptui.lab import control

    st = control.status(LabInstance(args.lab))
    if args.json:
        _print_json(st)
        return 0
    con = _console()
    if not st["up"]:
        con.print(f"lab {args.lab!r} is [bold red]down[/]")
        if st.get("leftovers"):
            con.print("  leftovers: " + ", ".join(st["leftovers"]) + " (run `ecmptui lab down`)")
        return 0
    from rich.table import Table

    con.print(f"lab {args.lab!r} is [bold green]up[/] at https://{st['endpoint']}  "
              f"project {st['project_id']}")
    con.print(f"  EIPs: {', '.join(st['eips']) or 'none'}   "
              f"Local BGP: {'enabled' if st['bgp']['enabled'] else 'not enabled'}")
    table = Table("device", "state", "namespace", "mgmt address", "BGP session", "learned")
    for d in st["devices"]:
        sess = d["sessions"][0] if d["sessions"] else None
        table.add_row(d["hostname"], d["state"], d["namespace"], d["mgmt_address"],
                      sess["status"] if sess else "-",
                      ", ".join(sess["learned_routes"]) if sess else "")
    con.print(table)
    for eip, hops in st["router"].items():
        con.print(f"  core router next hops for {eip}: {', '.join(hops) or 'none'}")
    return 0


# -- parser ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ecmptui", description=(
        "Anycast load balancing with BGP and ECMP: provision it, watch it, break it safely. "
        "With no command, opens the dashboard."))
    parser.add_argument("--version", action="version", version=f"ecmptui {__version__}")
    parser.add_argument("--lab", default=os.environ.get("ECMPTUI_LAB", DEFAULT_NAME),
                        metavar="NAME",
                        help="lab instance name (env ECMPTUI_LAB; default %(default)s)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    lab = sub.add_parser("lab", help="the local lab: a Metal-compatible cloud on this machine")
    lab_sub = lab.add_subparsers(dest="lab_command", metavar="ACTION", required=True,
                                 parser_class=_Parser)
    p = lab_sub.add_parser("up", help="build the lab and start its API (idempotent)")
    p.add_argument("--port", type=int, default=7443,
                   help="API port on 127.0.0.1 (0 picks a free one; default %(default)s)")
    p.add_argument("--json", action="store_true", help="print endpoint, project and files")
    p.set_defaults(func=cmd_lab_up)
    p = lab_sub.add_parser("down", help="stop the lab and remove everything it made")
    p.set_defaults(func=cmd_lab_down)
    p = lab_sub.add_parser("status", help="is the lab up; its devices, EIPs and sessions")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_lab_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    try:
        LabInstance(args.lab)
        if func is None:
            args.json = False
            return cmd_lab_status(args)
        return func(args)
    except EcmpError as exc:
        print(f"ecmptui: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ecmptui: interrupted", file=sys.stderr)
        return 130
