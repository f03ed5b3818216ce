"""Small modal questions: confirm a destructive action; start a lab that is down."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question: Enter confirms (the yes button has the focus), Esc cancels."""

    BINDINGS = [Binding("escape", "dismiss(False)", "Cancel")]

    def __init__(self, question: str, yes: str = "Yes", detail: str = "") -> None:
        super().__init__()
        self.question, self.yes, self.detail = question, yes, detail

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="question")
            if self.detail:
                yield Label(self.detail, classes="detail")
            with Horizontal(classes="buttons"):
                yield Button(self.yes, variant="error", id="yes")
                yield Button("Cancel", id="no")

    def on_mount(self) -> None:
        self.query_one("#yes", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class LabDownScreen(ModalScreen[bool]):
    """The configured lab is not up: start it, or continue without it."""

    BINDINGS = [Binding("escape", "dismiss(False)", "Continue without")]

    def __init__(self, lab: str, read_only: bool) -> None:
        super().__init__()
        self.lab, self.read_only = lab, read_only

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"The lab {self.lab!r} is not up.", classes="question")
            yield Label(
                "Start it now? (the same as `ecmptui lab up`)"
                if not self.read_only
                else "This session is read-only: ask an operator to start it."
            )
            with Horizontal(classes="buttons"):
                yield Button("Start the lab", variant="primary", id="yes", disabled=self.read_only)
                yield Button("Continue without", id="no")

    def on_mount(self) -> None:
        self.query_one("#no" if self.read_only else "#yes", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")
