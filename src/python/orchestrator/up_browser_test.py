"""A whole `up` (local processes, loopback engine) seen from a real browser, and the frontend's
reload on a source edit while the stack runs."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

from playwright.sync_api import Browser

import frontend
from frontend.testing_browser import open_voice_page
from orchestrator.testing import (
    UP_LINE,
    Orchestrator,
    orchestrator_process,
    project_processes,
    stack_env,
    unique_project,
)
from testsupport.polling import http_status, wait_for

# Generous: two slow cores run Chromium, the orchestrator and both services at once.
UP_TIMEOUT_S = 180.0
RELOAD_BOUND_S = 60.0
PROBE_PERSONA = "Reload probe"


def _local_env(root: Path, project: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    # A socket nobody listens on: no Docker engine, so nothing but local processes.
    return stack_env(
        root,
        project,
        {
            "DOCKER_HOST": f"unix://{root}/no-docker.sock",
            "MOSHI_BACKEND": "local",
            "MOSHI_ENGINE": "loopback",
            **(extra or {}),
        },
    )


def _healthy(url: str) -> bool:
    answer = http_status(url)
    return answer is not None and answer[0] == 200


def _wait_up(orchestrator: Orchestrator, env: dict[str, str]) -> None:
    orchestrator.wait_output(UP_LINE, timeout_s=UP_TIMEOUT_S)
    for port in (env["MOSHI_PORT"], env["APP_PORT"]):
        assert _healthy(f"http://127.0.0.1:{port}/health"), orchestrator.output()


def _persona_names(app_url: str) -> list[str] | None:
    answer = http_status(f"{app_url}/api/config")
    if answer is None or answer[0] != 200:
        return None
    return [str(persona["name"]) for persona in json.loads(answer[1])["personas"]]


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    pairs = (item.decode(errors="replace").partition("=") for item in raw if item)
    return {key: value for key, _, value in pairs}


def test_up_with_loopback_serves_the_ui_and_a_browser_conversation_goes_live(
    voice_browser: Browser, tmp_path: Path
) -> None:
    project = unique_project()
    env = _local_env(tmp_path, project)
    app_url = f"http://127.0.0.1:{env['APP_PORT']}/"
    with orchestrator_process(["up", "--backend", "local"], env, project) as orchestrator:
        _wait_up(orchestrator, env)
        assert "local process" in orchestrator.output()
        with open_voice_page(voice_browser, app_url) as voice:
            try:
                assert voice.state == "disconnected"
                voice.connect()  # waits for `live`
                # Audio went page -> frontend's config -> backend -> page's decoder.
                voice.wait_stat_above("samplesDecoded", 0)
            except AssertionError as error:
                raise AssertionError(
                    f"{error}\norchestrator:\n{orchestrator.output()[-4000:]}"
                ) from None
        code = orchestrator.signal_and_wait(signal.SIGINT)
        output = orchestrator.output()
        assert code == 130, output
        assert project_processes(project) == [], output
    assert "frontend: stopped" in output and "moshi-backend: stopped" in output


def test_editing_a_frontend_source_reloads_the_running_frontend(tmp_path: Path) -> None:
    # `up` puts <PERSONAPLEX_REPO_ROOT>/src/python first on the children's PYTHONPATH when it
    # holds the frontend's sources: a copy there is what the frontend runs from and watches, so
    # the test edits the copy and never the repository (or the Pants sandbox).
    tree = tmp_path / "tree"
    package = tree / "src" / "python" / "frontend"
    shutil.copytree(
        Path(frontend.__file__).resolve().parent,
        package,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    project = unique_project()
    env = _local_env(tmp_path, project, {"PERSONAPLEX_REPO_ROOT": str(tree)})
    app_url = f"http://127.0.0.1:{env['APP_PORT']}"
    with orchestrator_process(["up", "--backend", "local"], env, project) as orchestrator:
        _wait_up(orchestrator, env)
        frontends = [
            pid
            for pid in project_processes(project)
            if "APP_RELOAD" in (child := _environ(pid)) and child.get("APP_RELOAD") == "true"
        ]
        assert frontends, orchestrator.output()
        for pid in frontends:
            path = _environ(pid)["PYTHONPATH"].split(":")
            assert path[0] == str((tree / "src" / "python").resolve()), path
        names = _persona_names(app_url)
        assert names and PROBE_PERSONA not in names

        personas = package / "personas.py"
        edited = time.monotonic()
        with personas.open("a") as source:
            source.write(
                f"\nPERSONAS = (*PERSONAS, Persona({PROBE_PERSONA!r}, 'Added by a test.'))\n"
            )

        def reloaded() -> float | None:
            if orchestrator.process.poll() is not None:
                raise AssertionError(f"orchestrator exited {orchestrator.process.returncode}")
            shown = _persona_names(app_url)
            if shown is None or PROBE_PERSONA not in shown:
                return None
            return time.monotonic() - edited if _healthy(f"{app_url}/health") else None

        took = wait_for(
            reloaded,
            what=f"{PROBE_PERSONA!r} in /api/config after the edit",
            timeout_s=RELOAD_BOUND_S,
            interval_s=0.2,
            context=lambda: orchestrator.output()[-4000:],
        )
        print(f"frontend reload after editing personas.py: {took:.2f} s")
        assert orchestrator.process.poll() is None, orchestrator.output()
        code = orchestrator.signal_and_wait(signal.SIGINT)
        assert code == 130, orchestrator.output()
        assert project_processes(project) == []
