"""`telemetry clear` and `down --volumes` on a real history under a test state directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.conftest import SetVariables
from orchestrator.processes.run_state import RunRecord, RunState
from orchestrator.telemetry.history import history_dir
from orchestrator.telemetry.records import Batch
from orchestrator.telemetry.store import TelemetryStore
from orchestrator.telemetry.testing import log

PROJECT = "telemetry-cli"


@pytest.fixture
def state(stack_environment: SetVariables, tmp_path: Path) -> RunState:
    """The project's run state, with one recorded run of telemetry; no Docker engine answers."""
    stack_environment(PERSONAPLEX_PROJECT=PROJECT, DOCKER_HOST=f"unix://{tmp_path}/no-docker.sock")
    run_state = RunState(tmp_path / "state" / "personaplex", PROJECT)
    store = TelemetryStore(run_state.directory)
    store.open(new_run=True)
    store.add(Batch(logs=[log("kept until cleared")]))
    store.close()
    return run_state


def _runs(run_state: RunState) -> list[str]:
    reader = TelemetryStore(run_state.directory)
    reader.open(new_run=False)
    return [run["id"] for run in reader.runs()]


def test_clear_removes_the_history(state: RunState, capsys: pytest.CaptureFixture[str]) -> None:
    assert len(_runs(state)) == 1
    assert main(["telemetry", "clear"]) == 0
    assert not history_dir(state.directory).exists()
    assert main(["telemetry", "clear"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"removed the telemetry history of project {PROJECT}",
        f"project {PROJECT} has no telemetry history",
    ]


def test_clear_is_refused_while_up_runs(
    state: RunState, capsys: pytest.CaptureFixture[str]
) -> None:
    # Another live process stands for the project's `up`.
    up = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        state.save(RunRecord("session", up.pid))
        assert main(["telemetry", "clear"]) == 1
        err = capsys.readouterr().err
        assert f"`up` of project {PROJECT} is already running (pid {up.pid})" in err
        assert len(_runs(state)) == 1
    finally:
        up.kill()
        up.wait(timeout=10)
        state.clear()


def test_down_keeps_the_history_and_down_volumes_removes_it(
    state: RunState, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["down"]) == 0
    assert len(_runs(state)) == 1
    assert main(["down", "--volumes"]) == 0
    assert not history_dir(state.directory).exists()
    assert f"removed the telemetry history of project {PROJECT}" in capsys.readouterr().out


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["telemetry", "--help"])
    assert exited.value.code == 0
    assert "clear" in capsys.readouterr().out
