"""`?`: what every key does."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen

HELP = """\
# ecmptui

One service IP (the EIP) announced over BGP by every node; the router spreads connections
over the equal-cost paths. **p** provisions it, **b** shows the BGP sessions, **t** shows
where the traffic goes and lets you take nodes out.

| key | action |
|---|---|
| p / b / t | Provision, BGP and Traffic screens |
| ctrl+p | command palette: every action by name (provision, export, rate, ...) |
| P / D | provision / deprovision (Provision screen) |
| L | start the lab, when it is down |
| ↑ ↓ | select a node in the Traffic screen's table |
| w / a | withdraw / announce the selected node |
| s / S | shut down / start its BGP sessions |
| k / f / i / n | lab faults: kill / freeze the BGP daemon, isolate, stop nginx |
| r | restore (undo every fault) |
| R | reboot through the API |
| d | drain: new connections elsewhere, then withdraw (resilient-ECMP lab) |
| z, [ / ] | chart: zoom 1/5/15 min, scroll back / forward |
| space | pause or resume the prober |
| + / - | probe rate up / down |
| ? | this help |
| q | quit (stops the prober; the lab stays as it is) |

Actions that take a node out (withdraw, shut down, faults, reboot) ask first: **Enter**
confirms, **Esc** cancels. After each action the timeline measures how long ECMP took to
converge and how many requests failed; the chart marks it with ▲.

Every backend keeps its colour and its glyph (node1 █, node2 ▓, node3 ▒, ...), so the chart
reads without colour too. The **age** columns and the status line say how old what you see
is: older than 3 s is shown in red, and a node that does not answer within 2 s is
**unresponsive**.

In a read-only session (an SSH viewer) every action is refused.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close", key_display="esc")]

    def compose(self) -> ComposeResult:
        from textual.widgets import Markdown  # loaded when help is first opened, not at start

        with VerticalScroll(id="help-box"):
            yield Markdown(HELP)
