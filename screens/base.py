"""What every dashboard screen shares: the app, typed (screens call the app's methods and
read its state; they never import the lab or the deployment)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual import events
from textual.screen import Screen

if TYPE_CHECKING:
    from ecmptui.app import EcmpApp


class DashboardScreen(Screen):
    @property
    def dash(self) -> EcmpApp:
        return cast("EcmpApp", self.app)

    def refused_key(self, key: str) -> str | None:
        """What a key would do that a read-only view refuses (its binding is hidden then)."""
        return None

    def on_key(self, event: events.Key) -> None:
        """A read-only view shows no action keys; pressing one still says it is refused."""
        what = self.refused_key(event.key) if self.dash.read_only else None
        if what is not None:
            event.stop()
            self.dash.refuse_if_read_only(what)
