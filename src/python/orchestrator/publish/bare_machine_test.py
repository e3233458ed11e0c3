"""The bare-machine target `publish` writes, run for real: honcho (the honcho PEX `./pants
package` makes) starts the Procfile's two services from the loopback server PEX and the app PEX
with the .env a user would write; a conversation goes through the frontend's relay, the model hub
token reaches the backend only, and Ctrl-C stops both."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import psutil

from moshi_backend.testing import echo_once
from orchestrator.publish import bare_machine
from orchestrator.publish.deployment import BACKEND, FRONTEND
from orchestrator.publish.writer import ENV_TEMPLATE
from orchestrator.testing import CANARY_TOKEN, publish_into
from testsupport.polling import http_status
from testsupport.processes import free_port, process_under_test

# Where Pants puts the runtime_package_dependencies in the test's sandbox.
_SERVER_PEX = Path("src.python.moshi_backend/server-loopback.pex")
_APP_PEX = Path("src.python.frontend/app.pex")
_HONCHO_PEX = Path("src.python.orchestrator.publish/honcho.pex")
_API_KEY = "key-canary-bare-machine-71c3"
# A first start unpacks each PEX into a virtualenv (PEX_ROOT): seconds, more on a loaded machine.
_START_S = 240.0


def _filled_in(template: str, values: dict[str, str]) -> str:
    """The .env a user writes from the template: these values set, the rest as published."""
    lines = []
    for line in template.splitlines():
        name = line.lstrip("# ").partition("=")[0]
        lines.append(f"{name}={values.pop(name)}" if name in values else line)
    assert not values, f"not in the template: {sorted(values)}"
    return "\n".join(lines) + "\n"


def _listener(root: psutil.Process, port: int) -> psutil.Process:
    """The process under root that listens on port."""
    for process in [root, *root.children(recursive=True)]:
        try:
            connections = process.net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue
        if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in connections):
            return process
    raise AssertionError(f"nothing under honcho listens on {port}")


def _defaults(template: str) -> dict[str, str]:
    pairs = (line.partition("=") for line in template.splitlines() if not line.startswith("#"))
    return {name: value for name, _, value in pairs if name}


def test_published_procfile_runs_both_services_under_honcho(tmp_path: Path) -> None:
    output = publish_into(tmp_path, "--gpu", "off", extra={"MOSHI_ENGINE": "loopback"})
    directory = output / bare_machine.DIRECTORY
    template = (directory / ENV_TEMPLATE).read_text()
    published = _defaults(template)
    # What publish resolved: the engine asked for, the CPU (--gpu off), the backend on loopback.
    assert published["MOSHI_ENGINE"] == "loopback" and published["MOSHI_DEVICE"] == "cpu"
    assert published["MOSHI_HOST"] == "127.0.0.1" and published["MOSHI_PROXY"] == "true"
    assert CANARY_TOKEN not in template and published["HF_TOKEN"] == ""

    moshi_port, app_port = free_port(), free_port()
    (directory / ".env").write_text(
        _filled_in(
            template,
            {
                "HF_TOKEN": CANARY_TOKEN,
                "MOSHI_API_KEY": _API_KEY,
                "PYTHON": sys.executable,
                "MOSHI_PEX": str(_SERVER_PEX.resolve()),
                "FRONTEND_PEX": str(_APP_PEX.resolve()),
                "PEX_ROOT": str(tmp_path / "pex-root"),
                "MOSHI_PORT": str(moshi_port),
                "APP_PORT": str(app_port),
                # Only this machine's browsers: the test's own port on loopback.
                "APP_HOST": "127.0.0.1",
            },
        )
    )
    # As a user starts it: in the directory, with a plain environment (no test sources).
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path / "home")}
    command = [sys.executable, str(_HONCHO_PEX.resolve()), "start"]
    with process_under_test(command, env, inherit_env=False, cwd=directory) as honcho:
        for port in (moshi_port, app_port):
            honcho.wait_http(f"http://127.0.0.1:{port}/health", timeout_s=_START_S)
        # A browser's way in: the frontend's relay, which adds the key from the shared .env.
        asyncio.run(echo_once(f"ws://127.0.0.1:{app_port}/proxy/moshi"))
        # The backend got the key too: without it, nothing but the relay is served.
        answer = http_status(f"http://127.0.0.1:{moshi_port}/api/voices")
        assert answer is not None and answer[0] == 401, answer

        root = psutil.Process(honcho.process.pid)
        backend, frontend = _listener(root, moshi_port), _listener(root, app_port)
        assert backend.environ().get("HF_TOKEN") == CANARY_TOKEN
        assert "HF_TOKEN" not in frontend.environ()
        log = honcho.output()
        assert f"{BACKEND}." in log and f"{FRONTEND}." in log, log[-2000:]

        # Ctrl-C: honcho stops both and exits.
        os.kill(honcho.process.pid, signal.SIGINT)
        honcho.wait_exit(timeout_s=30)
        _, alive = psutil.wait_procs([backend, frontend], timeout=15)
        assert not alive, f"still running after Ctrl-C: {alive}"
        assert http_status(f"http://127.0.0.1:{app_port}/health") is None
