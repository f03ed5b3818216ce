"""The `ecmptui` command: the TUI by default, and headless subcommands for operators."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from ecmptui import __version__
from ecmptui.errors import EcmpError
from ecmptui.lab.instance import DEFAULT_NAME, MAX_VANTAGES, LabInstance
from ecmptui.limits import validate_rate


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad input as one line (exit 2) instead of a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _print_json(data: object) -> None:
    print(json.dumps(data, indent=2, sort_keys=False))


def _console() -> Any:
    """Rich's console; to a pipe or a file it keeps every column (no squeezing to 80)."""
    from rich.console import Console

    # emoji off: an IPv6 address such as 2001:db8:ec:100::3 holds the code ":100:"
    return Console(highlight=False, emoji=False, width=None if sys.stdout.isatty() else 250)


# -- lab ---------------------------------------------------------------------------------


def _image_progress(quiet: bool) -> Any:
    """Progress lines for an image build, on stderr (stdout may be JSON)."""
    started = time.monotonic()

    def say(stage: str) -> None:
        if not quiet or sys.stderr.isatty():
            print(
                f"  image [{time.monotonic() - started:5.1f} s] {stage}",
                file=sys.stderr,
                flush=True,
            )

    return say


def cmd_lab_up(args: argparse.Namespace) -> int:
    from ecmptui.lab import control, image

    if not image.image("server").ready():
        print("building the lab image first (once; about a minute)", file=sys.stderr)
    from ecmptui.lab.router import Resilient

    resilient = Resilient(args.buckets, args.idle_timer, args.unbalanced_timer)
    if args.ecmp != "resilient" and resilient != Resilient():
        raise EcmpError("--buckets, --idle-timer and --unbalanced-timer are for --ecmp resilient")
    if not 0 <= args.vantages <= MAX_VANTAGES:
        raise EcmpError(f"--vantages {args.vantages}: must be 0-{MAX_VANTAGES}")
    lab = LabInstance(args.lab)
    info, started = control.up(
        lab,
        port=args.port,
        progress=_image_progress(args.json),
        ecmp=args.ecmp,
        resilient=resilient,
    )
    sites = control.vantages(lab, args.vantages) if args.vantages else control.sites(lab)
    if args.json:
        _print_json({**info.public(), "vantages": sites})
        return 0
    con = _console()
    con.print(f"[bold green]lab {args.lab!r} {'is up' if started else 'was already up'}[/]")
    taken = args.port is None and started and not info.endpoint.endswith(":7443")
    con.print(
        f"  endpoint    https://{info.endpoint}"
        + ("  (port 7443 was taken: a free one was picked)" if taken else "")
    )
    con.print(f"  project id  {info.project_id}")
    con.print(f"  token file  {info.token_file}")
    con.print(f"  CA file     {info.ca_file}")
    con.print(f"  client ns   {info.client_namespace}  (the EIP is reachable only from there)")
    if sites:
        names = ", ".join(ns.removeprefix(lab.prefix) for ns in sites)
        con.print(f"  vantages    {names}  (`ecmptui exporter --vantage site1` probes from there)")
    con.print(
        f"  ECMP        {info.ecmp}"
        + (
            "  (resilient next-hop groups, kept by an agent on the fabric)"
            if info.ecmp == "resilient"
            else "  (hash-threshold, as a plain router)"
        )
    )
    return 0


def cmd_lab_image(args: argparse.Namespace) -> int:
    from ecmptui.lab import image

    if args.prune:
        removed = image.prune(_images_in_use())
        print("\n".join(f"removed {p}" for p in removed) or "no stale image to remove")
        return 0
    names = list(image.PACKAGES) if args.os == "all" else [args.os]
    out = []
    for name in names:
        before = image.image(name).ready()
        if not before or args.rebuild:
            print(f"building lab image {name!r} from {image.mirror()}", file=sys.stderr)
        img = image.ensure(name, _image_progress(args.json), rebuild=args.rebuild)
        out.append({**img.to_json(), "built_now": args.rebuild or not before})
    if args.json:
        _print_json(out if len(out) > 1 else out[0])
        return 0
    for item in out:
        print(
            f"{item['os']}: {item['path']} ({item['bytes'] / 1e6:.0f} MB, "
            f"{'built now' if item['built_now'] else 'cached'}, "
            f"packages: {', '.join(item['recipe']['packages'])})"
        )
    return 0


def _images_in_use() -> Any:
    """The image directories that running lab machines are built on (never pruned)."""
    from pathlib import Path

    used = set()
    for mountinfo in Path("/proc").glob("[0-9]*/mountinfo"):
        try:
            text = mountinfo.read_text()
        except OSError:
            continue
        for part in text.split("lowerdir=")[1:]:
            used.add(Path(part.split(",")[0].split()[0]).parent)
    return used


def cmd_lab_down(args: argparse.Namespace) -> int:
    from ecmptui.deployment.lock import DeploymentLock
    from ecmptui.deployment.port import lab_label
    from ecmptui.lab import control

    # never from under a provision, drill or action on this lab: they hold its writer lock
    with DeploymentLock(lab_label(args.lab), "lab down", wait=args.wait):
        found = control.down(LabInstance(args.lab))
    if found:
        print(
            f"lab {args.lab!r} is down: removed {len(found)} item(s): "
            + ", ".join(found[:6])
            + (", ..." if len(found) > 6 else "")
        )
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
        if st.get("adoptable"):
            con.print(
                "  its supervisor died, but its machines still serve: `ecmptui lab up` "
                "adopts them (`ecmptui lab down` removes them)"
            )
        elif st.get("leftovers"):
            con.print("  leftovers: " + ", ".join(st["leftovers"]) + " (run `ecmptui lab down`)")
        return 0
    from rich.table import Table

    con.print(
        f"lab {args.lab!r} is [bold green]up[/] at https://{st['endpoint']}  "
        f"project {st['project_id']}"
    )
    con.print(
        f"  EIPs: {', '.join(st['eips']) or 'none'}   "
        f"Local BGP: {'enabled' if st['bgp']['enabled'] else 'not enabled'}   "
        f"ECMP: {st.get('ecmp', 'hash')}"
    )
    table = Table("device", "state", "os", "machine", "mgmt address", "BGP session", "learned")
    for d in st["devices"]:
        sess = d["sessions"][0] if d["sessions"] else None
        machine = f"{d['machine']} (pid {d['pid']})" if d.get("pid") else (d.get("machine") or "-")
        table.add_row(
            d["hostname"],
            d["state"],
            d.get("os", "-"),
            machine,
            d["mgmt_address"],
            sess["status"] if sess else "-",
            ", ".join(sess["learned_routes"]) if sess else "",
        )
    con.print(table)
    for eip, hops in st["router"].items():
        con.print(f"  core router next hops for {eip}: {', '.join(hops) or 'none'}")
    return 0


# -- the dashboard --------------------------------------------------------------------------


def cmd_tui(args: argparse.Namespace) -> int:
    from ecmptui.cockpit import Cockpit, LocalCockpit

    validate_rate(args.rate)
    if not 0 <= args.dash_flows <= 5000:
        raise EcmpError(f"--flows {args.dash_flows}: must be 0-5000")
    settings = _settings(args)
    from ecmptui.app import EcmpApp  # the only place textual is imported
    from ecmptui.targets import dashboard_read_only

    read_only = args.read_only or dashboard_read_only(settings)
    if args.export:  # checked now: an export that fails on quit would be lost
        _writable_dir(args.export)
    feed = os.environ.get("ECMPTUI_FEED")
    cockpit: Cockpit
    if feed:  # a session of `ecmptui serve`: everything comes from the server's feed
        from ecmptui.serve.client import FeedCockpit

        cockpit = FeedCockpit(
            settings, feed, os.environ.get("ECMPTUI_FEED_TOKEN", ""), read_only=read_only
        )
    else:
        cockpit = LocalCockpit(settings, read_only=read_only)
    error_fd = os.environ.get("ECMPTUI_ERROR_FD")
    metrics, metrics_http = None, None
    if args.dash_metrics_listen is not None:
        from ecmptui.metrics import server as metrics_server
        from ecmptui.metrics.probe_metrics import ProbeMetrics

        metrics = ProbeMetrics(metrics_server.vantage_name(args.dash_vantage), settings.target)
        metrics_http = metrics_server.start(args.dash_metrics_listen, metrics)
    app = EcmpApp(
        cockpit,
        rate=args.rate,
        start_mode=args.screen,
        served=bool(os.environ.get("ECMPTUI_SERVED")),
        error_fd=int(error_fd) if error_fd and error_fd.isdigit() else None,
        export_dir=args.export,
        flows=args.dash_flows,
        metrics=metrics,
    )
    try:
        app.run()
    finally:
        if metrics_http is not None:
            metrics_http.stop()
    return 0


# -- deployment ----------------------------------------------------------------------------


def _lab_name(args: argparse.Namespace) -> str:
    """The lab instance when no --lab was given: the config file's `lab`, then
    ECMPTUI_LAB, then the default (as for every other setting)."""
    env = os.environ.get("ECMPTUI_LAB")
    if env:
        return env
    from ecmptui import config

    try:
        return config.load(args.config).lab
    except EcmpError:
        if args.config is not None:
            raise
        return DEFAULT_NAME  # a broken default file is reported by the commands that read it


def _settings(args: argparse.Namespace, **flags: Any) -> Any:
    from ecmptui import config

    return config.load(args.config, lab=args.lab if args.lab_given else None, **flags)


def _deployment(args: argparse.Namespace, **flags: Any) -> Any:
    from ecmptui.targets import open_deployment

    return open_deployment(_settings(args, **flags))


def _writer(args: argparse.Namespace, d: Any, what: str) -> Any:
    """The deployment's writer lock for `what` (one line `busy: ...` if someone holds it)."""
    from ecmptui.deployment.lock import DeploymentLock

    return DeploymentLock(d.target.lock_key(), what, wait=args.wait)


def _api_deployment(args: argparse.Namespace, refusal: str, **flags: Any) -> Any:
    """The deployment, where the target has an API; else `refusal` as the error."""
    from ecmptui.targets import target_for

    settings = _settings(args, **flags)
    target = target_for(settings)
    if not target.caps.api:
        raise EcmpError(f"target {target.kind.value}: {refusal}")
    return target.open()


def _print_events(con: Any, ev: Any) -> None:
    from ecmptui.deployment.steps import STEPS, StepState

    titles = dict(STEPS)
    mark = {
        StepState.RUNNING: "[yellow]…[/]",
        StepState.DONE: "[green]✓[/]",
        StepState.FAILED: "[red]✗[/]",
        StepState.PENDING: "[dim]·[/]",
    }[ev.state]
    if ev.node:
        if ev.state is not StepState.RUNNING:
            con.print(f"    {mark} {ev.node}: {ev.detail}")
        return
    if ev.state is StepState.RUNNING:
        con.print(f"[bold]{titles.get(ev.step, ev.step)}[/]")
    else:
        con.print(f"  {mark} {ev.detail}")


async def _drain(agen: Any, con: Any, quiet: bool) -> None:
    async for ev in agen:
        if not quiet:
            _print_events(con, ev)


def cmd_provision(args: argparse.Namespace) -> int:
    import asyncio

    from ecmptui.deployment.provision import Provisioner
    from ecmptui.traffic.service import verify as verify_service

    d = _api_deployment(
        args,
        "nothing to provision; `ecmptui check` checks the nodes",
        nodes=args.nodes,
        bfd=args.bfd,
        health=args.health,
        family=args.family,
        daemon=args.daemon,
    )
    prov = Provisioner(d, end_to_end=lambda: verify_service(d))
    con = _console()
    with _writer(args, d, "provision"):
        asyncio.run(_drain(prov.run(), con, args.json))
    inv = prov.inventory
    assert inv is not None
    eips = " and ".join(inv.eips.values())
    if args.json:
        _print_json(inv.to_json())
    elif prov.changed:
        con.print(f"[bold green]provisioned[/]: {eips} announced by {len(inv.nodes)} node(s)")
    else:
        con.print(f"[bold]no change[/]: {eips} already announced by {len(inv.nodes)} node(s)")
    return 0


def cmd_deprovision(args: argparse.Namespace) -> int:
    import asyncio

    from ecmptui.deployment.provision import deprovision

    d = _api_deployment(args, "ecmptui did not provision these nodes")
    with _writer(args, d, "deprovision"):
        asyncio.run(_drain(deprovision(d), _console(), False))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    import asyncio

    from ecmptui.display import check_line
    from ecmptui.traffic.service import check

    results = asyncio.run(
        check(_deployment(args), lambda msg: print(f"ecmptui: note: {msg}", file=sys.stderr))
    )
    if args.json:
        _print_json(results)
    else:
        for r in results:
            mark = "[green]✓[/]" if r["ok"] else "[red]✗[/]"
            where = "" if r.get("kind") == "service" else f" ({r['host']})"
            _console().print(f"{mark} {r['name']}{where}: {check_line(r)}")
    return 0 if all(r["ok"] for r in results) else 1


def cmd_inventory_export(args: argparse.Namespace) -> int:

    import asyncio

    from ecmptui.deployment.static import export_static, node_daemons

    out = _writable_output(args.output, args.force)  # before anything is looked up
    d = _api_deployment(args, "its config is the inventory already")
    daemons = asyncio.run(node_daemons(d, d.inventory()))
    for path in export_static(d, out, daemons):
        print(f"wrote {path}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    import asyncio

    from ecmptui.deployment.gather import gather
    from ecmptui.display import (
        NODE_COLUMNS,
        core_lines,
        grid_cells,
        grid_columns,
        node_cells,
        router_lines,
    )

    st = asyncio.run(gather(_deployment(args)))
    if args.json:
        _print_json(st.to_json())
        return 0
    from rich import box
    from rich.table import Table

    con = _console()
    if st.error:
        con.print(f"[yellow]note: {st.error}[/]")
    eips = " and ".join(st.eips.values()) or "none"
    con.print(f"target [bold]{st.target}[/]   EIP [bold]{eips}[/]")
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for key, heading in NODE_COLUMNS:
        if key == "error":  # the reason must show at any width: fold it, never drop it
            table.add_column(heading, overflow="fold")
        else:
            table.add_column(heading, no_wrap=True)
    for n in st.nodes:
        cells = node_cells(n)
        table.add_row(*(cells[k] for k, _ in NODE_COLUMNS))
    con.print(table)
    columns = grid_columns(st)
    if columns:  # each node's session to each router (in each family)
        grid = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        grid.add_column("node × router", no_wrap=True)
        for _, label in columns:
            grid.add_column(label, no_wrap=True)
        for n in st.nodes:
            cells = grid_cells(n, st)
            grid.add_row(n.name, *(cells[k] for k, _ in columns))
        con.print(grid)
    if st.router is not None:
        for line in router_lines(st):
            con.print(line)
        for line in core_lines(st):
            con.print(line)
    return 0


def cmd_node(args: argparse.Namespace) -> int:
    import asyncio

    from ecmptui.actions import Kind
    from ecmptui.deployment import operate

    d = _deployment(args)
    action = operate.lookup(args.fault if args.action == "fault" else args.action)
    operate.check_allowed(d, action)  # refuse before looking anything up
    with _writer(args, d, f"node {action.name} {args.name}"):
        if action.kind is Kind.DEVICE:
            inv = d.inventory()
        else:  # SSH-only: works through an API outage with the last known inventory
            inv = d.inventory_or_last(lambda msg: print(f"ecmptui: note: {msg}", file=sys.stderr))
        rec = inv.node(args.name)
        family = getattr(args, "family", None)
        if family is not None:
            inv.eip_for(family)  # one clear line when the deployment does not serve it
        outcome = asyncio.run(
            operate.perform(
                d, rec, action, reboot_timeout=getattr(args, "timeout", 90.0), family=family
            )
        )
    print(f"{rec.name}: {outcome}")
    return 0


def cmd_drain(args: argparse.Namespace) -> int:
    import asyncio

    from ecmptui.deployment.drain import drain

    d = _deployment(args)
    con = _console()
    with _writer(args, d, f"node drain {args.name}"):
        inv = d.inventory()
        rec = inv.node(args.name)
        if not inv.eips:
            raise EcmpError("nothing is deployed: no EIP to drain from")
        result = asyncio.run(
            drain(
                d,
                rec,
                list(inv.eips.values()),
                args.timeout,
                on_progress=lambda m: con.print(f"  {m}"),
            )
        )
    print(result.line())
    return 0


def cmd_router(args: argparse.Namespace) -> int:
    import asyncio

    from ecmptui.deployment import operate

    name = args.fault if args.router_action == "fault" else "restore"
    d = _deployment(args)
    with _writer(args, d, f"router {name} {args.name}"):
        outcome = asyncio.run(operate.perform_router(d, args.name, name))
    print(f"{args.name}: {outcome}")
    return 0


class Interrupted(KeyboardInterrupt):
    """A signal that ends a command like Ctrl-C does (its exit code says which)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _interrupt(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


def cmd_drill(args: argparse.Namespace) -> int:
    import asyncio
    from pathlib import Path

    from ecmptui.traffic.drill import Drill, report_markdown

    for report_path in args.report:
        _writable_output(report_path, force=True)  # a drill's results must not be lost
    import signal

    # SIGTERM and SIGHUP end a drill like Ctrl-C: its finally blocks undo what it changed
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    if not 0 <= args.flows <= 5000:
        raise EcmpError(f"--flows {args.flows}: must be 0-5000")
    d = _deployment(args)
    con = _console()

    def drill_of(family: Any) -> Drill:
        on_event = None if args.json else (lambda m: con.print(f"  {m}"))
        if on_event is not None and args.family == "both":
            on_event = lambda m, f=family: con.print(f"  [{f.short}] {m}")
        return Drill(
            d,
            rate=args.rate,
            node=args.node,
            limit_s=args.limit,
            on_event=on_event,
            flows=args.flows,
            flow_interval=args.flow_interval,
            family=family,
        )

    drill_of(None).plan(args.scenario)  # refuse bad names before touching anything
    with _writer(args, d, "drill"):
        families = _drill_families(d, args.family)
        results = []
        for family in families:
            results += asyncio.run(drill_of(family).run(args.scenario))
    text = report_markdown(results, args.rate, d.target.kind.value)
    for report_path in args.report:
        report = text
        if Path(report_path).suffix.lower() in (".html", ".htm"):
            from ecmptui.report.drill_report import drill_html

            report = drill_html(results, args.rate, d.target.kind.value)
        Path(report_path).write_text(report)
    if args.json:
        _print_json({"scenarios": [r.to_json() for r in results]})
    else:
        print(text)
    return 0 if all(r.recovered for r in results) else 1


def _drill_families(d: Any, wanted: str | None) -> list[Any]:
    """The families a drill probes: the one asked for, or with `both` (the default) every
    family the deployment serves, one after the other."""
    from ecmptui.family import Family

    inv = d.inventory()
    if wanted in (None, "both"):
        return list(inv.families) or [None]
    family = Family.parse(wanted)
    inv.eip_for(family)  # one clear line when the deployment does not serve it
    return [family]


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    from pathlib import Path

    from ecmptui.serve import guard, ssh

    settings = _settings(args)  # refuse a broken config here, not once per session
    host, port = ssh.parse_listen(args.listen)
    if args.demo_password is not None:
        raise EcmpError(
            "--demo-password: a password on the command line is visible to every "
            f"local user (ps); use --demo-password-file FILE or ${guard.PASSWORD_ENV}"
        )
    for flag, value in (
        ("--max-viewers", args.max_viewers),
        ("--max-operators", args.max_operators),
        ("--max-startups", args.max_startups),
        ("--max-startups-per-source", args.max_startups_per_source),
        ("--max-sessions", args.max_sessions),
        ("--max-sessions-per-source", args.max_sessions_per_source),
    ):
        least = 0 if flag in ("--max-viewers", "--max-operators") else 1
        if value < least:
            raise EcmpError(f"{flag} {value}: must be at least {least}")
    validate_rate(args.rate)
    app_args = ["--lab", args.lab] if args.lab_given else []  # a flag would beat the file
    if args.config:
        app_args = ["--config", str(Path(args.config).resolve()), *app_args]
    cfg = ssh.ServeConfig(
        listen_host=host,
        listen_port=port,
        max_viewers=args.max_viewers,
        max_operators=args.max_operators,
        max_startups=args.max_startups,
        max_startups_per_source=args.max_startups_per_source,
        max_sessions_per_connection=args.max_sessions,
        max_sessions_per_source=args.max_sessions_per_source,
        login_grace=args.login_grace,
        idle_timeout=args.idle_timeout,
        max_session=args.max_session,
        rate=args.rate,
        log_format=args.log_format,
        demo_password=guard.demo_password(args.demo_password_file),
        settings=settings,
        app_args=app_args,
        operators=Path(args.operators) if args.operators else None,
    )
    if args.authorized_keys:
        cfg.authorized_keys, cfg.authorized_keys_given = Path(args.authorized_keys), True
    if args.host_key:
        cfg.host_key = Path(args.host_key)
    metrics_http = None
    if args.metrics_listen is not None:
        from ecmptui.metrics import server as metrics_server
        from ecmptui.metrics.probe_metrics import ProbeMetrics

        cfg.metrics = ProbeMetrics(metrics_server.vantage_name(args.vantage), settings.target)
        metrics_http = metrics_server.start(args.metrics_listen, cfg.metrics)
    handler = logging.StreamHandler(sys.stderr)
    if args.log_format == "json":  # pure JSON lines, the server's own messages too
        from ecmptui.serve.audit import JsonLines

        handler.setFormatter(JsonLines())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    logging.getLogger("asyncssh").setLevel(logging.WARNING)  # ours says who and when
    try:
        asyncio.run(ssh.serve(cfg))
    finally:
        if metrics_http is not None:
            metrics_http.stop()
    return 0


def _in_namespace(ns: str) -> bool:
    try:
        return os.stat("/proc/self/ns/net").st_ino == os.stat(f"/run/netns/{ns}").st_ino
    except OSError:
        return False


def cmd_probe(args: argparse.Namespace) -> int:
    import signal
    import time

    from ecmptui.family import url_family
    from ecmptui.traffic.probe import Prober, summarize
    from ecmptui.traffic.url import check_url

    if args.rate == 0 and not args.flows:
        raise EcmpError("--rate 0 probes nothing: it is for --flows N alone")
    if not 0 <= args.flows <= 5000:
        raise EcmpError(f"--flows {args.flows}: must be 0-5000")
    url, netns = args.url, args.netns
    if url is not None:
        check_url(url)  # before anything is looked up
        if args.family is not None and url_family(url) not in (None, args.family):
            raise EcmpError(f"--family {args.family.api}: {url} is not an {args.family.api} URL")
    if url is None or (netns is None and not args.no_netns):
        d = _deployment(args)
        inv_url, inv_netns = d.probe_target(d.inventory(), args.family)
        url = url or inv_url
        if netns is None:
            netns = inv_netns  # the lab's client namespace: the EIP is routed only there
    if args.metrics_listen is not None:
        from ecmptui.metrics import server as metrics_server

        metrics_server.vantage_name(args.vantage)  # refused before anything starts
    if netns is not None and not _in_namespace(netns):
        if not os.path.exists(f"/run/netns/{netns}"):
            raise EcmpError(f"network namespace {netns!r} does not exist")
        if args.metrics_listen is not None and metrics_server.FD_ENV not in os.environ:
            # bound here, in this namespace (Prometheus's), and handed to the prober
            sock = metrics_server.bind(args.metrics_listen)
            sock.set_inheritable(True)
            os.environ[metrics_server.FD_ENV] = str(sock.fileno())
        argv = [a for a in sys.argv[1:] if a != args.url]
        if args.netns is None:
            argv += ["--netns", netns]
        os.execvp("ip", ["ip", "netns", "exec", netns, sys.executable, "-m", "ecmptui", *argv, url])
    import threading

    from ecmptui.traffic.flows import FlowEvent, FlowKeeper, FlowsOnly

    try:
        prober: Prober | FlowsOnly = (
            Prober(
                url,
                rate=args.rate,
                timeout=args.timeout,
                duration=args.duration,
                workers=args.workers,
            )
            if args.rate
            else FlowsOnly(args.duration)
        )
        keeper = (
            FlowKeeper(url, args.flows, args.flow_interval, args.timeout, args.flow_life)
            if args.flows
            else None
        )
    except ValueError as exc:
        raise EcmpError(str(exc)) from exc

    def stop(*_: object) -> None:
        prober.stop()
        if keeper is not None:
            keeper.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    samples = []
    out = sys.stdout
    flow_events: list[FlowEvent] = []
    write_lock = threading.Lock()

    metrics, metrics_http = None, None
    if args.metrics_listen is not None:
        from ecmptui.metrics.probe_metrics import ProbeMetrics

        metrics = ProbeMetrics(metrics_server.vantage_name(args.vantage), target="probe")
        metrics_http = metrics_server.start(args.metrics_listen, metrics)

    def on_flow(ev: FlowEvent) -> None:
        if metrics is not None:
            metrics.flow(ev)
        if args.jsonl:
            with write_lock:
                out.write(ev.to_json() + "\n")
        else:
            flow_events.append(ev)

    flow_thread = None
    if keeper is not None:
        flow_thread = threading.Thread(target=keeper.run, args=(on_flow,), daemon=True)
        flow_thread.start()
    interval_start = [time.monotonic()]
    bucket: list[Any] = []

    def on_sample(s: Any) -> None:
        if metrics is not None:
            metrics.observe(s)
        if args.jsonl and not args.interval:
            with write_lock:
                out.write(s.to_json() + "\n")
            return
        samples.append(s)
        if args.interval:
            bucket.append(s)
            now = time.monotonic()
            if now - interval_start[0] >= args.interval:
                summary = summarize(bucket, now - interval_start[0])
                out.write(json.dumps({"t": round(now, 3), **summary}) + "\n")
                out.flush()
                bucket.clear()
                interval_start[0] = now

    start = time.monotonic()
    try:
        prober.run(on_sample)
    except BrokenPipeError:
        return 0
    finally:
        if keeper is not None and flow_thread is not None:
            keeper.stop()
            flow_thread.join(timeout=args.timeout + 2)
        if metrics_http is not None:
            metrics_http.stop()
    elapsed = time.monotonic() - start
    if args.jsonl:
        out.flush()
        return 0
    summary = summarize(samples, elapsed)
    sched = prober.schedule.summary() if isinstance(prober, Prober) else None
    if sched is not None:
        summary["schedule"] = sched
    if keeper is not None:
        from ecmptui.traffic.flows import flow_summary

        summary["flows"] = flow_summary(flow_events, args.flows)
    if args.json:
        _print_json(summary)
    else:
        shares = ", ".join(f"{b} {n}" for b, n in summary["by_backend"].items()) or "none"
        errors = ", ".join(f"{k} {n}" for k, n in summary["errors"].items()) or "none"
        print(
            f"{summary['requests']} requests at {summary['rate']}/s to {url}: {shares}; "
            f"failed {summary['failed']} ({errors}); latency p50 "
            f"{summary['latency_ms']['p50']} ms, p99 {summary['latency_ms']['p99']} ms"
        )
        if keeper is not None:
            f = summary["flows"]
            where = ", ".join(f"{b} {n}" for b, n in f["broken_on"].items()) or "none"
            print(
                f"{args.flows} long-lived flows: {f['broken']} broke (on {where}), "
                f"{f['moved']} came back on another backend"
            )
        if sched is not None and sched["slipped"]:
            print(
                f"warning: the prober could not keep {sched['target_rate']:g}/s: it sent "
                f"{sched['sent']} of {sched['due']} requests due ({sched['achieved_rate']}/s"
                f"), late by p50 {sched['lag_ms']['p50']} ms, p99 {sched['lag_ms']['p99']} "
                "ms; failover times are only as fine as the requests actually sent",
                file=sys.stderr,
            )
    return 0


def cmd_exporter(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import signal

    from ecmptui.cockpit import LocalCockpit
    from ecmptui.metrics import server as metrics_server
    from ecmptui.metrics.exporter import Exporter
    from ecmptui.metrics.probe_metrics import ProbeMetrics

    validate_rate(args.rate)
    if not 0 <= args.flows <= 5000:
        raise EcmpError(f"--flows {args.flows}: must be 0-5000")
    vantage = metrics_server.vantage_name(args.vantage)
    settings = _settings(args)
    if not 1 <= args.poll <= 300:
        raise EcmpError(f"--poll {args.poll:g}: must be 1-300 seconds")
    cockpit = LocalCockpit(settings, read_only=True, poll_s=args.poll)
    netns = cockpit.target.vantage_netns(args.vantage) if args.vantage else None
    metrics = ProbeMetrics(vantage, target=cockpit.target_label())
    sock = metrics_server.bind(args.listen, "--listen")
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    server = metrics_server.MetricsServer(metrics.registry, sock).start()
    print(
        f"ecmptui exporter: metrics at {server.url} (vantage {vantage}, {args.rate:g} req/s)",
        file=sys.stderr,
        flush=True,
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, stop.set)
        if args.duration is not None:
            loop.call_later(args.duration, stop.set)
        exporter = Exporter(
            cockpit, metrics, args.rate, flows=args.flows, family=args.family, netns=netns
        )
        try:
            await exporter.run(stop)
        finally:
            await cockpit.close()

    try:
        asyncio.run(run())
    finally:
        server.stop()
    return 0


# -- parser ------------------------------------------------------------------------------


def _writable_output(path_text: str, force: bool) -> Any:
    """The output path, if a file can be written there (checked before any work)."""
    from pathlib import Path

    out = Path(path_text).expanduser()
    if out.is_dir():
        raise EcmpError(f"{out} is a directory: name a file")
    if out.exists() and not force:
        raise EcmpError(f"{out} exists: pass --force to replace it")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise EcmpError(f"{parent}: no such directory")
    if not os.access(parent, os.W_OK):
        raise EcmpError(f"{parent}: not writable")
    return out


def _writable_dir(path_text: str) -> None:
    """A directory the dashboard can write its export into (made if it is missing)."""
    from pathlib import Path

    out = Path(path_text).expanduser()
    if out.exists() and not out.is_dir():
        raise EcmpError(f"--export {out}: not a directory (the export writes several files)")
    parent = out if out.exists() else out.parent
    if not parent.is_dir():
        raise EcmpError(f"--export {out}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise EcmpError(f"--export {out}: {parent} is not writable")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0-65535: {text!r}")
    return value


def _rate_or_zero(text: str) -> float:
    return 0.0 if text.strip() in ("0", "0.0") else _positive_float(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def _families(text: str) -> str:
    """`--family` of provision: ipv4, ipv6 or dual."""
    from ecmptui.family import parse_families

    try:
        parse_families(text)
    except EcmpError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--family {text!r}: ")) from None
    return text.strip().lower()


def _daemons(text: str) -> str:
    """`--daemon` of provision: bird, frr or a comma list."""
    from ecmptui.node.daemon_names import parse_daemons

    try:
        return ",".join(parse_daemons(text))
    except EcmpError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _family(text: str) -> Any:
    """`--family` of probe, drill and node actions: ipv4 or ipv6 (a Family)."""
    from ecmptui.family import Family

    try:
        return Family.parse(text.strip().lower())
    except EcmpError:
        raise argparse.ArgumentTypeError(f"expected ipv4 or ipv6, got {text!r}") from None


def _family_or_both(text: str) -> str:
    value = text.strip().lower()
    if value == "both":
        return value
    return str(_family(value).api)


EXPORTER_LISTEN = "127.0.0.1:9478"


def _metrics_options(p: argparse.ArgumentParser, dashboard: bool = False) -> None:
    """--metrics-listen and --vantage (the dashboard's are global options, kept apart from
    a command's own so that neither overrides the other)."""
    prefix, dest = ("dashboard: ", "dash_") if dashboard else ("", "")
    p.add_argument(
        "--metrics-listen",
        default=None,
        dest=f"{dest}metrics_listen",
        metavar="HOST:PORT",
        help=f"{prefix}serve Prometheus metrics of what is measured at http://HOST:PORT/metrics",
    )
    p.add_argument(
        "--vantage",
        default=None,
        dest=f"{dest}vantage",
        metavar="NAME",
        help=f"{prefix}with --metrics-listen: the `vantage` label (default: the host name)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ecmptui",
        description=(
            "Anycast load balancing with BGP and ECMP: provision it, watch it, break it safely. "
            "With no command, opens the dashboard."
        ),
    )
    parser.add_argument("--version", action="version", version=f"ecmptui {__version__}")
    parser.add_argument(
        "--wait",
        type=_positive_float,
        default=0.0,
        metavar="S",
        help="commands that change the deployment: wait up to S seconds for "
        "another writer to finish (default: refuse at once)",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="log what the core does to stderr; on an error, show its causes (env ECMPTUI_DEBUG=1)",
    )
    parser.add_argument(
        "--lab",
        default=None,
        metavar="NAME",
        help=f"lab instance name (env ECMPTUI_LAB; default {DEFAULT_NAME})",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=None,
        help="settings file (default ~/.config/ecmptui/config.toml)",
    )
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="dashboard: refuse every action that changes anything",
    )
    parser.add_argument(
        "--rate",
        type=_positive_float,
        default=100.0,
        dest="rate",
        help="dashboard: probe rate in requests/s (default %(default)s)",
    )
    parser.add_argument(
        "--flows",
        type=int,
        default=0,
        metavar="N",
        dest="dash_flows",
        help="dashboard: also keep N long-lived connections; the timeline "
        "says how many each action broke, on the node and elsewhere",
    )
    parser.add_argument(
        "--export",
        metavar="DIR",
        default=None,
        help="dashboard: on quit (and from the palette) write the timeline and "
        "the BGP log to DIR as JSON lines and Markdown",
    )
    _metrics_options(parser, dashboard=True)
    parser.add_argument(
        "--screen",
        choices=("provision", "bgp", "traffic"),
        default=None,
        help="dashboard: the screen to open on (default traffic)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    lab = sub.add_parser("lab", help="the local lab: a Metal-compatible cloud on this machine")
    lab_sub = lab.add_subparsers(
        dest="lab_command", metavar="ACTION", required=True, parser_class=_Parser
    )
    p = lab_sub.add_parser("up", help="build the lab and start its API (idempotent)")
    p.add_argument(
        "--port",
        type=_port,
        default=None,
        help="API port on 127.0.0.1 (0 picks a free one; default 7443, or a free "
        "one when 7443 is taken)",
    )
    p.add_argument(
        "--ecmp",
        choices=("hash", "resilient"),
        default=None,
        help="the fabric's ECMP: hash (hash-threshold, what a plain router does; "
        "the default) or resilient (next-hop groups whose buckets move only "
        "from a removed server, or when idle)",
    )
    p.add_argument(
        "--buckets",
        type=int,
        default=128,
        metavar="N",
        help="resilient: buckets in the group (default %(default)s)",
    )
    p.add_argument(
        "--idle-timer",
        type=int,
        default=10,
        metavar="S",
        help="resilient: a bucket idle this long may move to a new server (default %(default)s)",
    )
    p.add_argument(
        "--unbalanced-timer",
        type=int,
        default=0,
        metavar="S",
        help="resilient: force buckets to move after S s unbalanced (0: never, "
        "the default: a busy flow is never moved)",
    )
    p.add_argument(
        "--vantages",
        type=int,
        default=0,
        metavar="N",
        help=f"also N client sites (site1..siteN, at most {MAX_VANTAGES}) that reach the EIP "
        "through the fabric, each its own vantage point (added to a lab already up)",
    )
    p.add_argument("--json", action="store_true", help="print endpoint, project and files")
    p.set_defaults(func=cmd_lab_up)
    p = lab_sub.add_parser(
        "image", help="build (or show) the cached Debian 12 image of the lab's machines"
    )
    p.add_argument(
        "--os",
        choices=("server", "plain", "all"),
        default="server",
        help="server: BIRD/nginx preinstalled (debian_12); plain: a fresh server "
        "(debian_12_plain); default %(default)s",
    )
    p.add_argument("--rebuild", action="store_true", help="build again even when cached")
    p.add_argument(
        "--prune",
        action="store_true",
        help="remove images of an older recipe that no running machine uses",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_lab_image)
    p = lab_sub.add_parser("down", help="stop the lab and remove everything it made")
    p.set_defaults(func=cmd_lab_down)
    p = lab_sub.add_parser("status", help="is the lab up; its devices, EIPs and sessions")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_lab_status)

    p = sub.add_parser("provision", help="the guide's four steps, then every server over SSH")
    p.add_argument("--nodes", type=int, metavar="N", help="number of servers (1-16)")
    p.add_argument(
        "--family",
        type=_families,
        metavar="ipv4|ipv6|dual",
        help="address families to announce the EIP in (the lab's default: dual; a family "
        "the deployment already serves is kept)",
    )
    p.add_argument(
        "--daemon",
        type=_daemons,
        metavar="bird|frr|bird,frr",
        help="the routing daemon of every node, or a list taken in turn (bird,frr: "
        "node 1 BIRD, node 2 FRR, ...); a node running the other one is switched. "
        "Default: each node keeps its own, a new one gets BIRD",
    )
    p.add_argument(
        "--bfd",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="BFD on the BGP sessions (fast failure detection)",
    )
    p.add_argument(
        "--health",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="deploy the node health check that withdraws the EIP when nginx "
        "fails (default on; [health] in the config)",
    )
    p.add_argument("--json", action="store_true", help="print the inventory as JSON")
    p.set_defaults(func=cmd_provision)
    p = sub.add_parser("deprovision", help="delete the servers, EIP and key provision made")
    p.set_defaults(func=cmd_deprovision)
    p = sub.add_parser(
        "check",
        help="check every node over SSH: its routing daemon, sessions, EIP on lo, nginx "
        "(changes nothing)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_check)
    inv = sub.add_parser("inventory", help="the provisioned inventory as a static config")
    inv_sub = inv.add_subparsers(
        dest="inventory_command", metavar="ACTION", required=True, parser_class=_Parser
    )
    p = inv_sub.add_parser(
        "export", help="write a `static` target config for what is provisioned now"
    )
    p.add_argument(
        "--output",
        "-o",
        default="ecmptui-static.toml",
        metavar="PATH",
        help="where to write it (default %(default)s)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p.set_defaults(func=cmd_inventory_export)
    p = sub.add_parser("status", help="BGP state of every node, API sessions, router next hops")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)

    from ecmptui.actions import ACTIONS, FAULTS, Kind

    node = sub.add_parser(
        "node",
        help="act on one node: withdraw, announce, shutdown, start, "
        "reboot; in the lab, faults and restore",
    )
    node_sub = node.add_subparsers(
        dest="action", metavar="ACTION", required=True, parser_class=_Parser
    )
    for action in ACTIONS.values():
        if action.kind is Kind.FAULT:
            continue  # one `fault` subcommand takes the fault's name
        text = ("lab only: " if action.lab_only else "") + action.help
        p = node_sub.add_parser(action.name, help=text)
        p.add_argument("name", help="node host name, index (2) or node2")
        if action.run_family is not None:
            p.add_argument(
                "--family",
                type=_family,
                default=None,
                metavar="ipv4|ipv6",
                help="only this address family's EIP or sessions (default: every family)",
            )
        if action.kind is Kind.DEVICE:
            p.add_argument(
                "--timeout",
                type=_positive_float,
                default=90.0,
                metavar="S",
                help="how long to wait for the node to be back (default %(default)s)",
            )
        p.set_defaults(func=cmd_node)
    p = node_sub.add_parser(
        "drain",
        help="take the node out without breaking its "
        "connections (resilient-ECMP router only): new ones go "
        "elsewhere, then it is withdrawn",
    )
    p.add_argument("name", help="node host name, index (2) or node2")
    p.add_argument(
        "--timeout",
        type=_positive_float,
        default=60.0,
        metavar="S",
        help="withdraw after S seconds even if connections are still open (default %(default)s)",
    )
    p.set_defaults(func=cmd_drain)
    p = node_sub.add_parser("fault", help="lab only: break the node (undo with restore)")
    p.add_argument("name", help="node host name, index (2) or node2")
    p.add_argument(
        "fault", choices=FAULTS, help="; ".join(f"{f}: {ACTIONS[f].help}" for f in FAULTS)
    )
    p.set_defaults(func=cmd_node)

    from ecmptui.actions import ROUTER_ACTIONS, ROUTER_FAULTS

    router = sub.add_parser(
        "router", help="lab only: break a core router (core1, core2) and restore it"
    )
    router_sub = router.add_subparsers(
        dest="router_action", metavar="ACTION", required=True, parser_class=_Parser
    )
    p = router_sub.add_parser("fault", help="break the router (undo with restore)")
    p.add_argument("name", choices=("core1", "core2"), help="which router")
    p.add_argument(
        "fault",
        choices=ROUTER_FAULTS,
        help="; ".join(f"{f}: {ROUTER_ACTIONS[f].help}" for f in ROUTER_FAULTS),
    )
    p.set_defaults(func=cmd_router)
    p = router_sub.add_parser("restore", help="undo every fault on the router")
    p.add_argument("name", choices=("core1", "core2"), help="which router")
    p.set_defaults(func=cmd_router)

    p = sub.add_parser("probe", help="request the EIP continuously, a new connection each time")
    p.add_argument("url", nargs="?", help="default: http://<EIP>/ from the inventory")
    p.add_argument(
        "--family",
        type=_family,
        default=None,
        metavar="ipv4|ipv6",
        help="which EIP to probe (default: the deployment's first family, IPv4 on a dual "
        "stack); with a URL, it must be of that family",
    )
    p.add_argument(
        "--rate",
        type=_rate_or_zero,
        default=100.0,
        help="new connections per second (default %(default)s; 0 with --flows: "
        "long-lived flows only)",
    )
    p.add_argument(
        "--duration",
        type=_positive_float,
        default=None,
        metavar="S",
        help="stop after S seconds (default: until Ctrl-C)",
    )
    p.add_argument(
        "--timeout",
        type=_positive_float,
        default=1.0,
        metavar="T",
        help="per-request timeout in seconds (default %(default)s)",
    )
    p.add_argument(
        "--jsonl",
        action="store_true",
        help="stream one JSON record per request (or per --interval)",
    )
    p.add_argument(
        "--interval",
        type=_positive_float,
        default=None,
        metavar="S",
        help="with --jsonl: one summary record every S seconds instead",
    )
    p.add_argument("--json", action="store_true", help="print the final summary as JSON")
    p.add_argument("--workers", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument(
        "--flows",
        type=int,
        default=0,
        metavar="N",
        help="also keep N long-lived connections (keep-alive request loops) and "
        "report every one that breaks, with where it was",
    )
    p.add_argument(
        "--flow-interval",
        type=_positive_float,
        default=1.0,
        metavar="S",
        help="one request per flow every S seconds (default %(default)s)",
    )
    p.add_argument(
        "--flow-life",
        type=_positive_float,
        default=None,
        metavar="S",
        help="each flow ends by itself after S seconds (default: never)",
    )
    p.add_argument(
        "--netns",
        default=None,
        metavar="NS",
        help="run inside this network namespace (default: the lab's client "
        "namespace on the lab target)",
    )
    p.add_argument(
        "--no-netns", action="store_true", help="run here, in this namespace, whatever the target"
    )
    _metrics_options(p)
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser(
        "exporter", help="probe and poll headless, with Prometheus metrics (docs/prometheus)"
    )
    p.add_argument(
        "--listen",
        default=EXPORTER_LISTEN,
        metavar="HOST:PORT",
        help="where Prometheus scrapes /metrics (default %(default)s; port 0: any, said at start)",
    )
    p.add_argument(
        "--rate",
        type=_positive_float,
        default=100.0,
        help="probe requests per second (default %(default)s)",
    )
    p.add_argument(
        "--family",
        type=_family,
        default=None,
        metavar="ipv4|ipv6",
        help="which EIP to probe (default: the deployment's first family)",
    )
    p.add_argument(
        "--flows",
        type=int,
        default=0,
        metavar="N",
        help="also keep N long-lived connections (ecmptui_flows_*)",
    )
    p.add_argument(
        "--poll",
        type=_positive_float,
        default=10.0,
        metavar="S",
        help="ask every node and the API for their status every S seconds (default "
        "%(default)g; Prometheus scrapes every 15 s): the exporter's main cost, SSH to every "
        "node and an API call per device each time",
    )
    p.add_argument(
        "--duration",
        type=_positive_float,
        default=None,
        metavar="S",
        help="stop after S seconds (default: until a signal)",
    )
    p.add_argument(
        "--vantage",
        default=None,
        metavar="NAME",
        help="the `vantage` label (default: this host's name); in the lab, a vantage made "
        "by `lab up --vantages N` (site1, site2, ...) probes from that site",
    )
    p.set_defaults(func=cmd_exporter)

    p = sub.add_parser("serve", help="serve the dashboard over SSH (keys decide who may act)")
    p.add_argument(
        "--listen",
        default="127.0.0.1:2222",
        metavar="HOST:PORT",
        help="address to listen on (default %(default)s)",
    )
    p.add_argument(
        "--authorized-keys",
        metavar="FILE",
        help="keys that may watch (read-only); default in the state directory "
        "(~/.local/state/ecmptui/serve/authorized_keys)",
    )
    p.add_argument(
        "--operators", metavar="FILE", help="keys that get the full app (may act on nodes)"
    )
    p.add_argument(
        "--host-key",
        metavar="FILE",
        help="server host key (generated once, 0600; default in the state dir)",
    )
    p.add_argument(
        "--max-viewers",
        type=int,
        default=8,
        metavar="N",
        help="read-only sessions at once (default %(default)s)",
    )
    p.add_argument(
        "--max-operators",
        type=int,
        default=2,
        metavar="N",
        help="operator sessions at once, kept free of viewers (default %(default)s)",
    )
    p.add_argument(
        "--max-startups",
        type=int,
        default=10,
        metavar="N",
        help="connections still logging in; more are dropped (default %(default)s)",
    )
    p.add_argument(
        "--max-startups-per-source",
        type=int,
        default=3,
        metavar="N",
        help="of those, from one address (default %(default)s)",
    )
    p.add_argument(
        "--max-sessions",
        type=int,
        default=2,
        metavar="N",
        help="terminals one connection may open (default %(default)s)",
    )
    p.add_argument(
        "--max-sessions-per-source",
        type=int,
        default=4,
        metavar="N",
        help="terminals open at once from one address (default %(default)s)",
    )
    p.add_argument(
        "--login-grace",
        type=_positive_float,
        default=30.0,
        metavar="S",
        help="time to log in, and then to open a terminal (default %(default)s s)",
    )
    p.add_argument(
        "--idle-timeout",
        type=_positive_float,
        default=900.0,
        metavar="S",
        help="end sessions without input for S seconds (default %(default)s)",
    )
    p.add_argument(
        "--max-session",
        type=_positive_float,
        default=3600.0,
        metavar="S",
        help="end a viewer's session after S seconds however busy (default %(default)s)",
    )
    p.add_argument(
        "--rate",
        type=_positive_float,
        default=100.0,
        dest="rate",
        help="the shared prober's requests/s, the same for every session (default %(default)s)",
    )
    p.add_argument(
        "--demo-password-file",
        metavar="FILE",
        default=None,
        help="also accept the password on this file's first line, for read-only "
        "viewers only (or set $ECMPTUI_DEMO_PASSWORD)",
    )
    p.add_argument(
        "--demo-password", metavar="PASSWORD", default=None, help=argparse.SUPPRESS
    )  # refused: visible in ps
    p.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="the audit log on stderr: text or JSON lines (default %(default)s)",
    )
    _metrics_options(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("drill", help="failover scenarios while probing, with a report")
    p.add_argument(
        "--scenario",
        action="append",
        metavar="NAME",
        help="withdraw, shutdown, kill-bird, freeze-bird, isolate, stop-nginx, "
        "reboot, router-kill, router-freeze, router-isolate, remove-node, "
        "add-node (repeatable; default all that the target allows)",
    )
    p.add_argument(
        "--rate",
        type=_positive_float,
        default=200.0,
        help="probe requests per second (default %(default)s)",
    )
    p.add_argument("--node", default=None, help="node to act on (default: the last one)")
    p.add_argument(
        "--family",
        type=_family_or_both,
        default=None,
        metavar="ipv4|ipv6|both",
        help="the EIP to probe (default both: every family the deployment serves, "
        "one after the other; each scenario is reported per family)",
    )
    p.add_argument(
        "--limit",
        type=_positive_float,
        default=8.0,
        metavar="S",
        help="how long to wait for traffic to settle after an action (default %(default)s s)",
    )
    p.add_argument(
        "--flows",
        type=int,
        default=0,
        metavar="N",
        help="also keep N long-lived connections and count the ones each change "
        "breaks, on the node and on the others (remove-node and add-node "
        "keep 100 by default)",
    )
    p.add_argument(
        "--flow-interval",
        type=_positive_float,
        default=0.5,
        metavar="S",
        help="one request per flow every S seconds (default %(default)s)",
    )
    p.add_argument(
        "--report",
        metavar="PATH",
        action="append",
        default=[],
        help="write the report there: Markdown, or with a .html name one self-contained "
        "HTML page with a chart per scenario (repeatable: both)",
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=cmd_drill)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.lab_given = args.lab is not None
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    debug = args.debug or bool(os.environ.get("ECMPTUI_DEBUG"))
    if debug:
        import logging

        logging.basicConfig(
            level=logging.DEBUG, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s"
        )
        for noisy in (
            "asyncio",
            "asyncssh",
            "urllib3",
            "httpx",
            "httpcore",
            "markdown_it",
            "packet",
        ):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        if args.lab is None:  # every command the same: the file, then the environment
            args.lab = _lab_name(args)
        LabInstance(args.lab)
        if func is None:
            return cmd_tui(args)
        return func(args)
    except EcmpError as exc:
        print(f"ecmptui: error: {exc}", file=sys.stderr)
        if debug:
            for cause in _causes(exc):
                print(f"  caused by {type(cause).__name__}: {cause}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        import signal

        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        print(f"ecmptui: interrupted ({signal.Signals(signum).name})", file=sys.stderr)
        return 128 + signum  # as a shell reports a command ended by that signal
    except Exception as exc:
        if debug:
            raise
        print(
            f"ecmptui: internal error: {type(exc).__name__}: {exc} (--debug shows the traceback)",
            file=sys.stderr,
        )
        return 1


def _causes(exc: BaseException) -> list[BaseException]:
    """The chain of causes behind an error (bounded: a cycle cannot loop)."""
    out: list[BaseException] = []
    cur = exc.__cause__ or exc.__context__
    while cur is not None and len(out) < 10 and cur not in out:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out
