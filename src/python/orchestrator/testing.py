"""Test helpers: the orchestrator as a real child process, and the processes a stack started."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from testsupport.polling import GaveUp, wait_for
from testsupport.processes import free_port, python_module_command, subprocess_env

CANARY_TOKEN = "hf_canary_" + "7f3a9c2e5b1d4068a9e2"
UP_LINE = "stack is up in"


def unique_project() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def stack_env(root: Path, project: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment for `python -m orchestrator` whose state and secrets live under root."""
    env = subprocess_env(
        {
            "XDG_STATE_HOME": str(root / "state"),
            "XDG_CONFIG_HOME": str(root / "config"),
            "PERSONAPLEX_PROJECT": project,
            "PERSONAPLEX_HEALTH_TIMEOUT_S": "120",
            "HF_TOKEN": CANARY_TOKEN,
            "MOSHI_PORT": str(free_port()),
            "APP_PORT": str(free_port()),
            # Every `up` serves its dashboard: never on the one default port, which tests share.
            "PERSONAPLEX_DASHBOARD_PORT": str(free_port()),
            **(extra or {}),
        }
    )
    # A test's own settings must not be overridden by the caller's shell.
    for name in (
        "PERSONAPLEX_CONFIG",
        "PERSONAPLEX_PROD",
        "MOSHI_GPU",
        "MOSHI_BACKEND",
        "MOSHI_BACKEND_PEX",
        "FRONTEND_PEX",
    ):
        if extra is None or name not in extra:
            env.pop(name, None)
    return env


def project_processes(project: str) -> list[int]:
    """Pids of live (non-zombie) processes started for project (they carry it in their env)."""
    marker = f"PERSONAPLEX_PROJECT={project}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if (entry / "stat").read_text().split(") ", 1)[1].startswith("Z"):
                continue
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return found


@dataclass
class Orchestrator:
    process: subprocess.Popen[bytes]
    log_path: Path
    project: str

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_output(self, text: str, timeout_s: float = 120.0) -> str:
        def probe() -> str | None:
            output = self.output()
            if text in output:
                return output
            if self.process.poll() is not None:
                raise GaveUp(f"orchestrator exited {self.process.returncode}")
            return None

        return wait_for(
            probe, what=f"{text!r} in the output", timeout_s=timeout_s, context=self.output
        )

    def signal_and_wait(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 60) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout=timeout_s)


@contextlib.contextmanager
def orchestrator_process(
    args: Sequence[str], env: Mapping[str, str], project: str
) -> Iterator[Orchestrator]:
    """`python -m orchestrator ARGS`; on exit it and everything it started are gone."""
    with tempfile.NamedTemporaryFile(prefix="orchestrator-", suffix=".log", delete=False) as log:
        log_path = Path(log.name)
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            python_module_command("orchestrator", *args),
            env=dict(env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        yield Orchestrator(process, log_path, project)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        # Whatever a failed test left behind must not outlive it.
        for pid in project_processes(project):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        log_path.unlink(missing_ok=True)


def run_orchestrator(
    args: Sequence[str], env: Mapping[str, str], timeout_s: float = 120, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        python_module_command("orchestrator", *args),
        env=dict(env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
