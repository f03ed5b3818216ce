"""What every dashboard screen shares: the app, typed (screens call the app's methods and
read its state; they never import the lab or the deployment)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.screen import Screen

if TYPE_CHECKING:
    from ecmptui.app import EcmpApp


class DashboardScreen(Screen):
    @property
    def dash(self) -> EcmpApp:
        return cast("EcmpApp", self.app)
