"""Services under test as real processes: started, waited for, and always stopped."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from ssl import SSLContext

from testsupport.polling import GaveUp, http_status, wait_for

_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def python_module_command(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def _die_with_parent() -> None:
    # Linux: if the test process is killed outright (a Pants timeout sends SIGKILL), its context
    # managers never run; the kernel then stops the service instead of leaving an orphan.
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def subprocess_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    # Inside a Pants test the sources are on sys.path, not on PYTHONPATH: hand them down.
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.update(extra)
    return env


@dataclass
class ProcessUnderTest:
    process: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_http(
        self,
        url: str,
        *,
        timeout_s: float = 60.0,
        expect_status: int = 200,
        ssl_context: SSLContext | None = None,
    ) -> bytes:
        """Body of url once it answers expect_status; GaveUp with the log otherwise."""

        def probe() -> bytes | None:
            if self.process.poll() is not None:
                raise GaveUp(f"process exited {self.process.returncode}")
            answer = http_status(url, ssl_context)
            return answer[1] if answer and answer[0] == expect_status else None

        return wait_for(
            probe,
            what=f"{url} answering {expect_status}",
            timeout_s=timeout_s,
            context=lambda: self.output()[-3000:],
        )

    def wait_exit(self, timeout_s: float = 30.0) -> int:
        return self.process.wait(timeout=timeout_s)


@contextmanager
def process_under_test(
    command: Sequence[str],
    env: Mapping[str, str] | None = None,
    stop_timeout_s: float = 10.0,
    *,
    inherit_env: bool = True,
    cwd: Path | None = None,
) -> Iterator[ProcessUnderTest]:
    """Run command in its own process group; SIGTERM on exit, SIGKILL if it lingers.
    inherit_env=False: env is the whole environment (a program as a user would start it, without
    the test's sources on PYTHONPATH)."""
    with tempfile.NamedTemporaryFile(prefix="service-", suffix=".log", delete=False) as log:
        log_path = Path(log.name)
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            list(command),
            env=subprocess_env(env or {}) if inherit_env else dict(env or {}),
            cwd=cwd,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    try:
        yield ProcessUnderTest(process, log_path)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=stop_timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=stop_timeout_s)
        log_path.unlink(missing_ok=True)
