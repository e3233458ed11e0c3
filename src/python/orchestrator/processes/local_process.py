"""Services as local child processes, each in its own process group, output relayed as events."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from orchestrator.errors import OrchestratorError
from orchestrator.events import LogLine
from orchestrator.hub import EventHub
from orchestrator.processes.run_state import group_alive

# Python's own default is 64 KiB; a longer log line must not kill the relay.
_LINE_LIMIT = 1024 * 1024


@dataclass(frozen=True)
class ProcessSpec:
    service: str
    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: Path | None = None


class RunningProcess(Protocol):
    """What the supervisor needs of a running service process."""

    @property
    def pid(self) -> int:
        ...

    @property
    def pgid(self) -> int:
        ...

    async def exit_description(self) -> str | None:
        ...

    async def wait(self) -> int:
        ...

    async def logs_done(self, timeout_s: float) -> None:
        ...

    async def stop(self, grace_s: float) -> None:
        ...


class ProcessLauncher(Protocol):
    async def start(self, spec: ProcessSpec) -> RunningProcess:
        ...


class LocalProcess:
    def __init__(self, process: asyncio.subprocess.Process, service: str, hub: EventHub) -> None:
        self._process = process
        self._service = service
        self._hub = hub
        self._relay = asyncio.create_task(self._relay_output(), name=f"relay-{service}")

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def pgid(self) -> int:
        # start_new_session made the child the leader of a group with its own pid.
        return self._process.pid

    async def exit_description(self) -> str | None:
        code = self._process.returncode
        if code is None:
            return None
        if code < 0:
            return f"was killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"

    async def wait(self) -> int:
        return await self._process.wait()

    async def _relay_output(self) -> None:
        stream = self._process.stdout
        if stream is None:
            return
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # asyncio has already discarded the over-long line
                await self._hub.publish(LogLine(self._service, "[a line over 1 MiB was dropped]"))
                continue
            if not raw:
                return
            text = raw.decode(errors="replace").rstrip("\r\n")
            await self._hub.publish(LogLine(self._service, text))

    async def logs_done(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._relay), timeout_s)

    async def stop(self, grace_s: float) -> None:
        """SIGTERM to the whole group, SIGKILL after grace_s; returns once the group is gone."""
        if self._process.returncode is None:
            _signal_group(self.pgid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self._process.wait(), grace_s)
            except TimeoutError:
                _signal_group(self.pgid, signal.SIGKILL)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._process.wait(), grace_s)
        # The leader may be gone while a worker it started lingers in the group.
        _signal_group(self.pgid, signal.SIGKILL)
        await _group_gone(self.pgid, timeout_s=grace_s)
        await self.logs_done(timeout_s=2.0)
        if not self._relay.done():
            self._relay.cancel()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _group_gone(pgid: int, timeout_s: float) -> None:
    """Wait (bounded) until no process of the group runs any more, so its ports are free."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline and await asyncio.to_thread(group_alive, pgid):
        await asyncio.sleep(0.1)


class LocalLauncher:
    """The production ProcessLauncher: asyncio subprocesses in new sessions."""

    def __init__(self, hub: EventHub) -> None:
        self._hub = hub

    async def start(self, spec: ProcessSpec) -> LocalProcess:
        try:
            process = await asyncio.create_subprocess_exec(
                *spec.argv,
                env=dict(spec.env),
                cwd=spec.cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                # Own process group: signals reach the service and its children, never us.
                start_new_session=True,
                limit=_LINE_LIMIT,
            )
        except OSError as error:
            raise OrchestratorError(f"cannot start {spec.service}: {error}") from error
        return LocalProcess(process, spec.service, self._hub)
