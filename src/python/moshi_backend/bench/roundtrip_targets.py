"""The servers a round-trip benchmark measures, each run as a subprocess on a free port."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from moshi_backend.bench import floor_server
from stack_telemetry.testing import fake_collector
from testsupport.polling import GaveUp
from testsupport.processes import free_port, process_under_test

SERVER = "server"
FLOOR = "floor"
# The same backend with telemetry on (exporting to a collector in this process) and off.
TELEMETRY_ON = "otel-on"
TELEMETRY_OFF = "otel-off"
_HOST = "127.0.0.1"
# The backend's package, run with `-m`; its __main__ is a declared dependency in BUILD.
_BACKEND_MODULE = "moshi_backend"


class BenchError(Exception):
    """The benchmark could not measure: a server did not start or a session failed."""


@dataclass(frozen=True)
class Target:
    name: str
    base_url: str
    # The server's process, for its CPU time; None when it is not ours to watch.
    pid: int | None = None
    chat_path: str = "/api/chat"

    @property
    def chat_url(self) -> str:
        return self.base_url.replace("http", "ws", 1) + self.chat_path

    def cpu_seconds(self) -> float | None:
        """CPU time of the server's live threads so far (Linux); None where unknown."""
        if self.pid is None:
            return None
        total_ns = 0
        try:
            for task in Path(f"/proc/{self.pid}/task").iterdir():
                try:
                    total_ns += int((task / "schedstat").read_text().split()[0])
                except FileNotFoundError:
                    continue  # a thread that ended while being read
        except (OSError, ValueError, IndexError):
            return None
        return total_ns / 1e9


def backend_command(port: int, max_sessions: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        _BACKEND_MODULE,
        "--engine",
        "loopback",
        "--host",
        _HOST,
        "--port",
        str(port),
        "--max-sessions",
        str(max_sessions),
        "--loopback-delay-ms",
        "0",
    ]


def floor_command(port: int) -> list[str]:
    return [sys.executable, "-m", floor_server.__name__, "--host", _HOST, "--port", str(port)]


@asynccontextmanager
async def served(
    name: str,
    command: Sequence[str],
    port: int,
    ready_timeout_s: float,
    *,
    env: Mapping[str, str] | None = None,
    chat_path: str = "/api/chat",
) -> AsyncIterator[Target]:
    """A server of the bench as a process, ready; its process group is stopped on the way out."""
    base_url = f"http://{_HOST}:{port}"
    with process_under_test(command, env) as server:
        try:
            await asyncio.to_thread(
                server.wait_http, base_url + "/health", timeout_s=ready_timeout_s
            )
        except GaveUp as error:
            raise BenchError(f"{name}: {error}") from None
        yield Target(name, base_url, server.process.pid, chat_path)


@asynccontextmanager
async def telemetry_targets(
    max_sessions: int, ready_timeout_s: float = 60.0
) -> AsyncIterator[dict[str, Target]]:
    """The backend twice, ready: exporting traces, metrics and logs to a collector in this
    process that answers and forgets, and with telemetry off; both terminated on the way out."""
    on_port, off_port = free_port(_HOST), free_port(_HOST)
    with fake_collector(keep=False) as sink:
        # The on/off switch is the service's own setting (an empty endpoint is unset).
        on_env = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint}
        off_env = {"OTEL_EXPORTER_OTLP_ENDPOINT": ""}
        on_command = backend_command(on_port, 2 * max_sessions)
        off_command = backend_command(off_port, 2 * max_sessions)
        async with (
            served(TELEMETRY_ON, on_command, on_port, ready_timeout_s, env=on_env) as on,
            served(TELEMETRY_OFF, off_command, off_port, ready_timeout_s, env=off_env) as off,
        ):
            yield {TELEMETRY_ON: on, TELEMETRY_OFF: off}
        # Stopped, the backend has flushed what it had not exported yet: none means it was off.
        if not sink.posts:
            raise BenchError(f"{TELEMETRY_ON}: the collector received no export")


@asynccontextmanager
async def running_targets(
    max_sessions: int, ready_timeout_s: float = 60.0
) -> AsyncIterator[dict[str, Target]]:
    """The backend and the floor on free ports, ready; both terminated on the way out."""
    backend_port, floor_port = free_port(_HOST), free_port(_HOST)
    # Headroom: a slot frees only once the last run's close handshake is through.
    backend = backend_command(backend_port, 2 * max_sessions)
    async with (
        served(SERVER, backend, backend_port, ready_timeout_s) as server,
        served(FLOOR, floor_command(floor_port), floor_port, ready_timeout_s) as floor,
    ):
        yield {SERVER: server, FLOOR: floor}
