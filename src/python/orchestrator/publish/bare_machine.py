"""The bare-machine target: a Procfile and its .env template that run the PEX files `./pants
package` makes under honcho, on a GPU box without Docker.

honcho gives every process the whole .env. The variable names are shared on purpose (the frontend
reads MOSHI_PORT and MOSHI_API_KEY to reach the backend the way the backend reads them to serve),
but the model hub token is the backend's alone: the frontend's command drops it.
"""

from __future__ import annotations

from orchestrator.environments import SECRET_NAMES
from orchestrator.publish.deployment import BACKEND, FRONTEND, Deployment

DIRECTORY = "bare-machine"
PROCFILE = "Procfile"
# Where `./pants package` writes them; the template's defaults are these names, copied beside the
# Procfile.
SERVER_PEX = "server.pex"
APP_PEX = "app.pex"
HONCHO_PEX = "honcho.pex"
PACKAGED = {
    SERVER_PEX: "dist/src.python.moshi_backend/server.pex",
    APP_PEX: "dist/src.python.frontend/app.pex",
    HONCHO_PEX: "dist/src.python.orchestrator.publish/honcho.pex",
}


def procfile() -> str:
    # honcho runs each line through /bin/sh, so the .env's values expand here. A PEX re-executes
    # itself under an interpreter that fits it (CPython 3.11) when PYTHON is another one.
    hidden = " ".join(f"-u {name}" for name in sorted(SECRET_NAMES))
    return (
        "# Written by `orchestrator publish`: publish again instead of editing.\n"
        f"# Run here with `python3 {HONCHO_PEX} start` (or `honcho start`) after\n"
        "# `cp .env.example .env`.\n"
        f'{BACKEND}: exec "${{PYTHON:-python3}}" "${{MOSHI_PEX:-{SERVER_PEX}}}"\n'
        f'{FRONTEND}: exec env {hidden} "${{PYTHON:-python3}}" "${{FRONTEND_PEX:-{APP_PEX}}}"\n'
    )


def _backend(deployment: Deployment) -> dict[str, str]:
    env = dict(deployment.backend_env)
    # Only the frontend on this machine talks to the backend; TLS, if any, is the frontend's.
    env.update({"MOSHI_HOST": "127.0.0.1", "MOSHI_USE_SSL": "false"})
    if not deployment.gpu:
        # Published with --gpu off: the model runs on the CPU even where a GPU is present.
        env["MOSHI_DEVICE"] = "cpu"
    return env


def _frontend(deployment: Deployment) -> dict[str, str]:
    return {
        "APP_HOST": "0.0.0.0",
        "APP_PORT": str(deployment.app_port),
        # Browsers reach the model only through the frontend's relay, which finds the backend
        # from the shared MOSHI_HOST and MOSHI_PORT.
        "MOSHI_PROXY": "true",
        # The server's events (and with them, what is said) stay with browsers on this machine.
        "APP_LOGS_STREAM": "loopback",
    }


def env_template(deployment: Deployment) -> str:
    lines = [
        "# Copy to .env beside the Procfile and fill in; never commit the filled-in copy.",
        "# The model hub token, for gated weights (PersonaPlex); the frontend never gets it.",
        "HF_TOKEN=",
        "# A key the backend requires of every conversation; the frontend's relay sends it.",
        "MOSHI_API_KEY=",
        "",
        "# The interpreter the PEX files start under (they need CPython 3.11 on this machine),",
        "# and where they are. `./pants package ::` writes them under dist/.",
        "PYTHON=python3",
        f"MOSHI_PEX={SERVER_PEX}",
        f"FRONTEND_PEX={APP_PEX}",
        "# Where a PEX unpacks itself on its first start (default ~/.cache/pex); the model",
        "# weights go to HF_HOME (default ~/.cache/huggingface).",
        "# PEX_ROOT=",
        "# HF_HOME=",
        "",
        f"# {BACKEND}: what `orchestrator publish` resolved.",
        *(f"{name}={value}" for name, value in sorted(_backend(deployment).items())),
        "",
        f"# {FRONTEND}: serves the page on every interface; put a TLS proxy in front of it for",
        "# browsers on other machines (they allow the microphone only over HTTPS).",
        *(f"{name}={value}" for name, value in _frontend(deployment).items()),
    ]
    return "\n".join(lines) + "\n"
