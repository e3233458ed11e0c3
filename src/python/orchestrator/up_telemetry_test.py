"""`up` (local processes, loopback engine) with its OTLP receiver: the services are pointed at
it, a conversation's span reaches the dashboard's API and stays in the history after the run;
the caller's own endpoint wins, and --no-telemetry sets nothing."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import aiohttp

from orchestrator import events
from orchestrator.processes.run_state import RunState
from orchestrator.telemetry.queries import TraceFilter
from orchestrator.telemetry.store import TelemetryStore
from orchestrator.testing import (
    UP_LINE,
    orchestrator_process,
    project_processes,
    stack_env,
    unique_project,
)
from testsupport.polling import http_status, wait_for
from testsupport.processes import free_port

_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"


def _env(tmp_path: Path, project: str, **extra: str) -> dict[str, str]:
    return stack_env(
        tmp_path,
        project,
        {
            "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock",
            "MOSHI_BACKEND": "local",
            "MOSHI_ENGINE": "loopback",
            # The backend's span processor exports within 0.2 s instead of 5.
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            **extra,
        },
    )


def _api(env: dict[str, str], path: str) -> Any:
    answer = http_status(f"http://127.0.0.1:{env['PERSONAPLEX_DASHBOARD_PORT']}{path}")
    assert answer is not None and answer[0] == 200, answer
    return json.loads(answer[1])


def _service_environ(env: dict[str, str], project: str) -> dict[str, dict[str, str]]:
    """Each service's environment, read from the leader of its process group."""
    record = json.loads(
        (Path(env["XDG_STATE_HOME"]) / "personaplex" / f"{project}.json").read_text()
    )
    found = {}
    for process in record["processes"]:
        raw = Path(f"/proc/{process['pid']}/environ").read_bytes().split(b"\0")
        pairs = (item.decode(errors="replace").partition("=") for item in raw if item)
        found[process["service"]] = {key: value for key, _, value in pairs}
    return found


def _converse(backend_port: str) -> None:
    """One conversation with the loopback backend: the handshake, then the client leaves."""

    async def run() -> None:
        url = f"ws://127.0.0.1:{backend_port}/api/chat"
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            message = await asyncio.wait_for(ws.receive(), 30)
            assert message.type is aiohttp.WSMsgType.BINARY and message.data[:1] == b"\x00"

    asyncio.run(run())


def test_up_receives_the_services_telemetry_and_keeps_it(tmp_path: Path) -> None:
    project = unique_project()
    port = free_port()
    env = _env(tmp_path, project, PERSONAPLEX_OTLP_PORT=str(port))
    endpoint = f"http://127.0.0.1:{port}"
    with orchestrator_process(["up"], env, project) as orchestrator:
        output = orchestrator.wait_output(UP_LINE, timeout_s=180)
        assert f"telemetry receiver at {endpoint}" in output
        status = _api(env, "/api/telemetry/status")
        assert status["enabled"] is True and status["endpoint"] == endpoint
        environs = _service_environ(env, project)
        assert environs[events.BACKEND][_VARIABLE] == endpoint
        assert environs[events.FRONTEND][_VARIABLE] == endpoint
        # The backend's probe of the receiver was answered (it gives up after 2 s). The
        # frontend's line goes to its own logger, which uvicorn's configuration does not print.
        orchestrator.wait_output(
            f"telemetry enabled: {events.BACKEND} exports traces, metrics and logs to {endpoint}",
            timeout_s=30,
        )

        _converse(env["MOSHI_PORT"])
        traces = wait_for(
            lambda: _api(env, "/api/telemetry/traces?resource=moshi-backend")["traces"] or None,
            what="the conversation's trace in the dashboard's API",
            timeout_s=60,
            context=orchestrator.output,
        )
        run = _api(env, "/api/telemetry/status")["run"]
        code = orchestrator.signal_and_wait(signal.SIGTERM)
        assert code == 143, orchestrator.output()
    assert project_processes(project) == []

    # The run is in the history, with its trace, for the next `up`'s dashboard.
    store = TelemetryStore(RunState(Path(env["XDG_STATE_HOME"]) / "personaplex", project).directory)
    store.open(new_run=False)
    [listed] = store.runs()
    assert listed["id"] == run and listed["spans"] >= 1
    kept = store.traces(run, TraceFilter())
    assert traces[0]["trace_id"] in [trace["trace_id"] for trace in kept]


def test_the_callers_endpoint_wins_and_no_telemetry_sets_nothing(tmp_path: Path) -> None:
    project = unique_project()
    theirs = f"http://127.0.0.1:{free_port()}"
    env = _env(tmp_path, project, **{_VARIABLE: theirs})
    with orchestrator_process(["up"], env, project) as orchestrator:
        output = orchestrator.wait_output(UP_LINE, timeout_s=180)
        assert f"the services export to the caller's {_VARIABLE}" in output
        status = _api(env, "/api/telemetry/status")
        assert status["enabled"] is True and status["services_export_elsewhere"] is True
        environs = _service_environ(env, project)
        assert {environs[name][_VARIABLE] for name in environs} == {theirs}
        assert orchestrator.signal_and_wait(signal.SIGTERM) == 143

    del env[_VARIABLE]
    with orchestrator_process(["up", "--no-telemetry"], env, project) as orchestrator:
        output = orchestrator.wait_output(UP_LINE, timeout_s=180)
        assert "telemetry receiver" not in output
        status = _api(env, "/api/telemetry/status")
        assert status["enabled"] is False and status["endpoint"] is None
        environs = _service_environ(env, project)
        assert not [name for name in environs if _VARIABLE in environs[name]]
        # The previous run's history is still listed.
        assert len(_api(env, "/api/telemetry/runs")["runs"]) == 1
        assert orchestrator.signal_and_wait(signal.SIGTERM) == 143
