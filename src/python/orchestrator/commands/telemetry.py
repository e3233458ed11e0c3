"""`telemetry clear`: the project's telemetry history removed (refused while its `up` runs, which
writes the history and would only recreate it)."""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.processes.run_state import RunState
from orchestrator.settings import StackSettings
from orchestrator.stack.supervisor import refuse_if_running
from orchestrator.telemetry.history import clear_history


def clear_telemetry(
    settings: StackSettings, run_state: RunState, *, say: Callable[[str], None]
) -> int:
    refuse_if_running(run_state, settings.project)
    if clear_history(run_state.directory):
        say(f"removed the telemetry history of project {settings.project}")
    else:
        say(f"project {settings.project} has no telemetry history")
    return 0
