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
| ctrl+p | command palette: every action by name |
| space | pause or resume the prober (Traffic) |
| + / - | probe rate up / down (Traffic) |
| ? | this help |
| q | quit (stops the prober; the lab stays as it is) |

**Withdraw** stops announcing the EIP (the BGP session stays up: a graceful drain);
**Announce** brings it back. In the lab, **Kill**, **Freeze**, **Isolate** and **Stop web**
break a node the way real servers break; **Restore** undoes it. After each action the
Traffic screen measures how long ECMP took to converge and how many requests failed.

In a read-only session (an SSH viewer) every action is refused.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close", key_display="esc")]

    def compose(self) -> ComposeResult:
        from textual.widgets import Markdown  # loaded when help is first opened, not at start

        with VerticalScroll(id="help-box"):
            yield Markdown(HELP)
