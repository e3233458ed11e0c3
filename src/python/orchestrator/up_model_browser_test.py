"""`up --backend local --engine personaplex --gpu off` on a tiny checkpoint: the real server PEX
(torch and the model engines) as a local process, and Chromium holding a conversation with it."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

from playwright.sync_api import Browser

from frontend.testing_browser import open_voice_page
from orchestrator.stack.local_backend import pex_root
from orchestrator.testing import (
    UP_LINE,
    orchestrator_process,
    project_processes,
    stack_env,
    unique_project,
)
from orchestrator.testing_checkpoint import write_tiny_checkpoint
from testsupport.polling import http_status

# Where Pants puts the server PEX (runtime_package_dependencies) in this test's sandbox.
SERVER_PEX = Path("src.python.moshi_backend/server.pex")
# Two slow cores run Chromium, torch, the orchestrator and the frontend at once; the model is
# far slower than real time there, so nothing below measures speed.
UP_TIMEOUT_S = 600.0
CONVERSATION_TIMEOUT_S = 300.0


def test_up_runs_the_model_from_the_server_pex_and_chromium_holds_a_conversation(
    voice_browser: Browser, tmp_path: Path
) -> None:
    started = time.monotonic()
    project = unique_project()
    env = stack_env(
        tmp_path,
        project,
        {
            "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock",
            # The PEX's environment (gigabytes with torch) goes under tmp_path, not the user's.
            "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "PERSONAPLEX_HEALTH_TIMEOUT_S": str(UP_TIMEOUT_S),
        },
    )
    try:
        voice = write_tiny_checkpoint(SERVER_PEX, tmp_path / "tiny", pex_root(env))
        arguments = ["up", "--backend", "local", "--engine", "personaplex", "--gpu", "off"]
        arguments += ["--hf-repo", str(tmp_path / "tiny"), "--backend-pex", str(SERVER_PEX)]
        with orchestrator_process(arguments, env, project) as orchestrator:
            orchestrator.wait_output(UP_LINE, timeout_s=UP_TIMEOUT_S)
            output = orchestrator.output()
            assert "the backend runs PERSONAPLEX on the CPU (MOSHI_GPU=off)" in output
            # Writing the checkpoint unpacked the PEX under the same root: not again.
            assert "first start: unpacking" not in output
            answer = http_status(f"http://127.0.0.1:{env['MOSHI_PORT']}/health")
            assert answer is not None and answer[0] == 200, output
            health = json.loads(answer[1])
            assert (health["engine"], health["device"]) == ("personaplex", "cpu"), health
            with open_voice_page(voice_browser, f"http://127.0.0.1:{env['APP_PORT']}/") as page:
                try:
                    page.wait_until(
                        "[...document.getElementById('voice').options]"
                        f".some((o) => o.value === {json.dumps(voice)})",
                        "the checkpoint's voice offered",
                    )
                    page.page.select_option("#voice", voice)
                    # A fixed seed, as the model tests use (the field is under "advanced").
                    page.evaluate("document.getElementById('seed').value = '9'")
                    page.page.click("#connect")
                    # The persona prompt runs through the model before the handshake.
                    page.wait_state("live", timeout_s=CONVERSATION_TIMEOUT_S)
                    # Spoken to (Chromium's synthetic microphone), it answers in audio and text.
                    for stat in ("pagesSent", "samplesDecoded", "textPieces"):
                        page.wait_stat_above(stat, 0, timeout_s=CONVERSATION_TIMEOUT_S)
                except AssertionError as error:
                    raise AssertionError(
                        f"{error}\norchestrator:\n{orchestrator.output()[-4000:]}"
                    ) from None
                assert page.stats()["peakDecoded"] > 0.001  # sound, not silence
            code = orchestrator.signal_and_wait(signal.SIGINT)
            output = orchestrator.output()
            assert code == 130, output
            assert project_processes(project) == [], output
        took = time.monotonic() - started
        print(f"tiny checkpoint, up and a conversation in Chromium: {took:.0f} s")
    finally:
        shutil.rmtree(tmp_path / "cache", ignore_errors=True)
