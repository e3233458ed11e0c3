"""The terminal sink: every service's lines with a coloured prefix, progress, notices.

Colour and the live progress bar appear only on a terminal (rich decides, and honours NO_COLOR);
every line passes through the Masker first, whatever its source.
"""

from __future__ import annotations

from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.text import Text

from orchestrator import events
from orchestrator.events import Event, Level, LogLine, Notice, ResourceState, StateChanged
from orchestrator.masking import Masker

_COLOURS = {
    events.BACKEND: "magenta",
    events.FRONTEND: "cyan",
    events.BUILD: "blue",
    events.ORCHESTRATOR: "bold white",
}
_LEVEL_STYLES = {Level.INFO: "", Level.WARNING: "yellow", Level.ERROR: "bold red"}
_STATE_STYLES = {
    ResourceState.HEALTHY: "green",
    ResourceState.FAILED: "bold red",
    ResourceState.STOPPED: "dim",
}
_PREFIX_WIDTH = max(len(name) for name in _COLOURS)
# Without a terminal, progress is printed as lines: one per quarter of the work.
_STEPS = 4


class TerminalPrinter:
    def __init__(self, masker: Masker, stream: TextIO | None = None) -> None:
        self._mask = masker
        self.console = Console(file=stream, highlight=False, markup=False, emoji=False)
        self._bar: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._last_line_progress: dict[str, tuple[int, str]] = {}

    def on_event(self, event: Event) -> None:
        if isinstance(event, LogLine):
            self.line(event.resource, event.text)
        elif isinstance(event, Notice):
            self.line(events.ORCHESTRATOR, event.text, _LEVEL_STYLES[event.level])
        elif isinstance(event, StateChanged):
            # A build belongs to the service it builds: its bar ends when that service moves on.
            self._finish_progress(event.resource)
            self._finish_progress(events.BUILD)
            words = f"{event.resource}: {event.state.value}"
            if event.endpoint:
                words += f" at {event.endpoint}"
            if event.waiting_for:
                words += f" for {event.waiting_for}"
            if event.detail:
                words += f" ({event.detail})"
            self.line(events.ORCHESTRATOR, words, _STATE_STYLES.get(event.state, ""))
        else:
            self._progress(event)

    def line(self, resource: str, text: str, style: str = "") -> None:
        prefix = Text(f"{resource:<{_PREFIX_WIDTH}} | ", style=_COLOURS.get(resource, "white"))
        body = Text(self._mask(text), style=style)
        target = self._bar.console if self._bar is not None else self.console
        # soft_wrap: long log lines stay whole instead of being cut at 80 columns off a terminal.
        target.print(prefix + body, soft_wrap=True)

    def _progress(self, event: events.Progress) -> None:
        message = self._mask(event.message)
        if not self.console.is_terminal:
            step = int((event.fraction or 0.0) * _STEPS)
            # Unknown amounts are shown once per message, known ones once per quarter.
            key = (step, message if event.fraction is None else "")
            if self._last_line_progress.get(event.resource) != key:
                self._last_line_progress[event.resource] = key
                percent = "" if event.fraction is None else f" {event.fraction:.0%}"
                self.line(event.resource, f"{message}{percent}", "dim")
            return
        if self._bar is None:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                console=self.console,
                transient=True,
            )
            self._bar.start()
        description = f"{event.resource}: {message}"
        total = 1.0 if event.fraction is not None else None
        if event.resource not in self._tasks:
            self._tasks[event.resource] = self._bar.add_task(description, total=total)
        self._bar.update(
            self._tasks[event.resource],
            description=description,
            completed=event.fraction or 0.0,
            total=total,
        )

    def _finish_progress(self, resource: str) -> None:
        self._last_line_progress.pop(resource, None)
        if self._bar is None or resource not in self._tasks:
            return
        self._bar.remove_task(self._tasks.pop(resource))
        if not self._tasks:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
            self._tasks.clear()


class LogArchive:
    """Keeps each service's (masked) lines in a file, for `orchestrator logs` after the fact."""

    def __init__(self, masker: Masker, path_of: dict[str, str]) -> None:
        self._mask = masker
        self._paths = path_of
        self._files: dict[str, TextIO] = {}

    def on_event(self, event: Event) -> None:
        if not isinstance(event, LogLine) or event.resource not in self._paths:
            return
        file = self._files.get(event.resource)
        if file is None:
            # Appends to a local file are as cheap as the terminal writes next to them; a thread
            # per line would cost more than it saves.
            file = open(self._paths[event.resource], "w", buffering=1)  # noqa: SIM115
            self._files[event.resource] = file
        file.write(self._mask(event.text) + "\n")

    def close(self) -> None:
        for file in self._files.values():
            file.close()
        self._files.clear()
