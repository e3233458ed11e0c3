from __future__ import annotations

import asyncio
import json
import signal
import ssl
import stat
import time
from pathlib import Path

import aiohttp
import pytest

from orchestrator.testing import (
    CANARY_TOKEN,
    UP_LINE,
    orchestrator_process,
    project_processes,
    run_orchestrator,
    stack_env,
    unique_project,
)
from testsupport.polling import http_status


@pytest.fixture
def local_env(tmp_path: Path) -> tuple[str, dict[str, str]]:
    project = unique_project()
    # A socket nobody listens on: `up` must find no Docker engine and run the backend locally;
    # the loopback engine even on a machine with a GPU, where auto would run the model's PEX.
    env = stack_env(
        tmp_path,
        project,
        {"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock", "MOSHI_ENGINE": "loopback"},
    )
    return project, env


def _get_json(url: str) -> dict[str, object]:
    answer = http_status(url)
    assert answer is not None, f"nothing answers at {url}"
    assert answer[0] == 200, answer
    document = json.loads(answer[1])
    assert isinstance(document, dict)
    return document


def _ws_messages(url: str, quiet_s: float = 1.5) -> list[str]:
    async def read() -> list[str]:
        messages: list[str] = []
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            while True:
                try:
                    message = await asyncio.wait_for(ws.receive(), quiet_s)
                except TimeoutError:
                    return messages
                if message.type is not aiohttp.WSMsgType.TEXT:
                    return messages
                messages.append(str(message.data))

    return asyncio.run(read())


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    pairs = (item.decode(errors="replace").partition("=") for item in raw if item)
    return {key: value for key, _, value in pairs}


def _process_group(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[2])


def _run_record(env: dict[str, str], project: str) -> dict[str, object]:
    path = Path(env["XDG_STATE_HOME"]) / "personaplex" / f"{project}.json"
    record = json.loads(path.read_text())
    assert isinstance(record, dict)
    return record


def test_up_without_docker_runs_both_locally_then_sigterm_leaves_no_process(
    local_env: tuple[str, dict[str, str]],
) -> None:
    project, env = local_env
    backend, frontend = (
        f"http://127.0.0.1:{env['MOSHI_PORT']}",
        f"http://127.0.0.1:{env['APP_PORT']}",
    )
    with orchestrator_process(["up"], env, project) as orchestrator:
        output = orchestrator.wait_output(UP_LINE)
        assert "no Docker engine answers" in output and "runs as a local process" in output
        assert _get_json(f"{backend}/health")["status"] == "ready"
        health = _get_json(f"{frontend}/health")
        assert health["status"] == "ok"
        assert isinstance(health["backend"], dict) and health["backend"]["url"] == backend

        config = _get_json(f"{frontend}/api/config")
        # The browser is sent to the backend's real endpoint.
        assert config["moshi_ws_url"] == f"ws://127.0.0.1:{env['MOSHI_PORT']}/api/chat"
        assert CANARY_TOKEN not in json.dumps(config)
        logs = _ws_messages(f"ws://127.0.0.1:{env['APP_PORT']}/ws/logs")
        assert logs, "the frontend's /ws/logs replayed nothing"
        assert not [m for m in logs if CANARY_TOKEN in m]

        # The token reaches the backend's environment and never the frontend's.
        processes = _run_record(env, project)["processes"]
        assert isinstance(processes, list)
        groups = {str(p["service"]): int(p["pgid"]) for p in processes}
        pids = project_processes(project)
        by_service = {
            service: [pid for pid in pids if _process_group(pid) == group]
            for service, group in groups.items()
        }
        assert by_service["frontend"] and by_service["moshi-backend"], by_service
        assert _environ(by_service["moshi-backend"][0])["HF_TOKEN"] == CANARY_TOKEN
        for pid in by_service["frontend"]:  # uvicorn's reloader and its server process
            assert CANARY_TOKEN not in json.dumps(_environ(pid))

        status = run_orchestrator(["status"], env)
        assert status.returncode == 0, status.stderr
        rows = {line.split()[0]: line for line in status.stdout.splitlines() if line}
        assert "process" in rows["moshi-backend"] and "healthy" in rows["moshi-backend"]
        assert "healthy" in rows["frontend"] and frontend in rows["frontend"]

        code = orchestrator.signal_and_wait(signal.SIGTERM)
        output = orchestrator.output()
    assert code == 143, output
    assert project_processes(project) == []
    assert CANARY_TOKEN not in output
    assert "frontend: stopped" in output and "moshi-backend: stopped" in output
    assert not (Path(env["XDG_STATE_HOME"]) / "personaplex" / f"{project}.json").exists()

    # The services' lines stay readable after the run, masked like everything else.
    printed = run_orchestrator(["logs", "frontend", "--tail", "5"], env)
    assert printed.returncode == 0, printed.stderr
    lines = printed.stdout.splitlines()
    assert len(lines) == 5 and all(line.startswith("frontend") for line in lines), lines
    nothing = run_orchestrator(["status"], env)
    assert f"nothing of project {project} is running" in nothing.stdout


def test_ssl_stack_serves_https_with_its_own_certificates(
    local_env: tuple[str, dict[str, str]],
) -> None:
    project, env = local_env
    with orchestrator_process(["up", "--ssl"], env, project) as orchestrator:
        output = orchestrator.wait_output(UP_LINE)
        assert f"open https://127.0.0.1:{env['APP_PORT']}" in output
        # Clients trust the stack's own pair (pinned) and nothing else: it verifies.
        certs = Path(env["XDG_STATE_HOME"]) / "personaplex" / project / "certs"
        pinned = ssl.create_default_context(cafile=str(certs / "cert.pem"))
        answer = http_status(f"https://127.0.0.1:{env['APP_PORT']}/health", pinned)
        assert answer is not None and answer[0] == 200
        backend = json.loads(answer[1])["backend"]
        # The frontend reaches the backend over TLS too, trusting the same pair.
        assert backend["url"] == f"https://127.0.0.1:{env['MOSHI_PORT']}"
        assert backend["reachable"] is True, backend
        assert stat.S_IMODE((certs / "key.pem").stat().st_mode) == 0o600
        assert orchestrator.signal_and_wait(signal.SIGTERM) == 143


def test_sigint_exits_130(local_env: tuple[str, dict[str, str]]) -> None:
    project, env = local_env
    with orchestrator_process(["up"], env, project) as orchestrator:
        orchestrator.wait_output(UP_LINE)
        code = orchestrator.signal_and_wait(signal.SIGINT)
    assert code == 130
    assert project_processes(project) == []


def test_backend_that_exits_at_start_fails_fast_with_its_last_lines(
    local_env: tuple[str, dict[str, str]],
) -> None:
    project, env = local_env
    env["MOSHI_LOOPBACK_DELAY_MS"] = "-1"  # passed through to the backend, which rejects it
    started = time.monotonic()
    result = run_orchestrator(["up"], env)
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "orchestrator: moshi-backend exited with code 2 before it became healthy" in result.stderr
    )
    assert "invalid MOSHI_LOOPBACK_DELAY_MS" in result.stderr
    assert elapsed < 60, "the gate waited for its timeout instead of noticing the exit"
    assert project_processes(project) == []


def test_next_up_sweeps_what_a_killed_orchestrator_left(
    local_env: tuple[str, dict[str, str]],
) -> None:
    project, env = local_env
    with orchestrator_process(["up"], env, project) as first:
        first.wait_output(UP_LINE)
        assert first.signal_and_wait(signal.SIGKILL) == -signal.SIGKILL
        # Its services have their own process groups: they survived, holding the ports.
        assert project_processes(project)
        with orchestrator_process(["up"], env, project) as second:
            output = second.wait_output(UP_LINE)
            assert "stopped leftovers of a crashed run" in output
            assert second.signal_and_wait(signal.SIGTERM) == 143
        assert project_processes(project) == []


def test_down_stops_a_running_up(local_env: tuple[str, dict[str, str]]) -> None:
    project, env = local_env
    with orchestrator_process(["up"], env, project) as orchestrator:
        orchestrator.wait_output(UP_LINE)
        result = run_orchestrator(["down"], env)
        assert result.returncode == 0, result.stderr
        assert orchestrator.process.wait(timeout=30) == 143
    assert f"project {project} is down" in result.stdout
    assert project_processes(project) == []
