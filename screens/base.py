"""What every dashboard screen shares: the view the app hands down, redrawn when it
changes, and the refusal of action keys in a read-only view. Screens never import the app:
they read their `view` and post messages (`screens.messages`)."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.reactive import reactive
from textual.screen import Screen

from .messages import Refused
from .view import DashboardView


def log_line(markup: str) -> Text:
    """A RichLog line from markup, without emoji codes: an IPv6 address such as
    2001:db8:ec:100::3 holds ":100:", which Rich would draw as an emoji."""
    return Text.from_markup(markup, emoji=False)


class DashboardScreen(Screen[None]):
    view: reactive[DashboardView] = reactive(DashboardView, always_update=True, init=False)

    def watch_view(self, old: DashboardView, new: DashboardView) -> None:
        # an app that stopped running is shutting down: its widgets may be gone already (a
        # tick's view racing the teardown), and nothing is drawn any more
        running = self.app.is_running
        if running and self.is_mounted and self.is_current and self.shows_change(old, new):
            self.redraw()

    def shows_change(self, old: DashboardView, new: DashboardView) -> bool:
        """Whether what changed from `old` to `new` is something this screen shows."""
        return True

    def on_screen_resume(self) -> None:
        self.redraw()  # what changed while another screen was shown

    def redraw(self) -> None:
        """Bring the widgets up to `view` (touching only what changed)."""

    def refused_key(self, key: str) -> str | None:
        """What a key would do that a read-only view refuses (its binding is hidden then)."""
        return None

    def on_key(self, event: events.Key) -> None:
        """A read-only view shows no action keys; pressing one still says it is refused."""
        what = self.refused_key(event.key) if self.view.read_only else None
        if what is not None:
            event.stop()
            self.post_message(Refused(what))
