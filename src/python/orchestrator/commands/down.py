"""`down`: everything of the project stops, the persistent container included."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable

from orchestrator.clock import Clock
from orchestrator.containers.connection import DockerConnector, docker_client
from orchestrator.containers.engine import DockerEngine
from orchestrator.hub import EventHub
from orchestrator.processes.run_state import RunState, kill_group, pid_alive
from orchestrator.settings import StackSettings
from orchestrator.telemetry.history import clear_history

_DOWN_WAIT_S = 30.0


async def down(
    settings: StackSettings,
    run_state: RunState,
    *,
    connect_docker: DockerConnector,
    clock: Clock,
    say: Callable[[str], None],
    remove_volume: bool = False,
) -> int:
    record = run_state.load()
    if record is not None:
        if record.orchestrator_pid != os.getpid() and pid_alive(record.orchestrator_pid):
            # The running `up` stops its own services; it is asked first, then made sure of.
            say(f"stopping `up` (pid {record.orchestrator_pid})")
            os.kill(record.orchestrator_pid, signal.SIGTERM)
            deadline = clock.monotonic() + _DOWN_WAIT_S
            while pid_alive(record.orchestrator_pid) and clock.monotonic() < deadline:
                await clock.sleep(0.2)
        for process in record.processes:
            if kill_group(process, signal.SIGKILL):
                say(f"killed {process.service} (pid {process.pid})")
        run_state.clear()
    async with docker_client(connect_docker) as (client, reason):
        if client is None:
            say(f"no Docker engine answers ({reason}); no containers to remove")
        else:
            engine = DockerEngine(client, EventHub(), settings.project)
            for name in await engine.remove_all():
                say(f"removed container {name}")
            for name in await engine.remove_networks():
                say(f"removed network {name}")
            if remove_volume and await engine.remove_volume(settings.hf_cache_volume):
                say(f"removed volume {settings.hf_cache_volume}")
    # After `up` has stopped: it writes the history until its end.
    if remove_volume and await asyncio.to_thread(clear_history, run_state.directory):
        say(f"removed the telemetry history of project {settings.project}")
    say(f"project {settings.project} is down")
    return 0
