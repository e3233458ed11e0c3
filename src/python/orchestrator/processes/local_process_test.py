from __future__ import annotations

import asyncio
import os
import sys
import time

from orchestrator.hub import EventHub
from orchestrator.processes.local_process import LocalLauncher, ProcessSpec
from orchestrator.processes.run_state import group_alive

# A leader that ignores SIGTERM and a child of its own: the worst case for a clean stop.
_STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print("ready", flush=True)
time.sleep(600)
"""


async def test_stop_kills_the_whole_group_after_the_grace_period() -> None:
    hub = EventHub()
    runner = asyncio.create_task(hub.run())
    try:
        launcher = LocalLauncher(hub)
        spec = ProcessSpec("svc", [sys.executable, "-c", _STUBBORN], env=dict(os.environ))
        process = await launcher.start(spec)
        assert process.pgid != os.getpgid(0)  # its own group: our signals never reach us
        for _ in range(100):
            await hub.drain()
            if hub.recent_lines("svc"):
                break
            await asyncio.sleep(0.1)
        assert hub.recent_lines("svc") == ["ready"]
        started = time.monotonic()
        await process.stop(grace_s=1.0)
        assert 1.0 <= time.monotonic() - started < 5.0
        assert await process.exit_description() == "was killed by SIGKILL"
        assert not group_alive(process.pgid)
    finally:
        runner.cancel()


async def test_exit_is_described_with_its_code() -> None:
    hub = EventHub()
    runner = asyncio.create_task(hub.run())
    try:
        spec = ProcessSpec("svc", [sys.executable, "-c", "raise SystemExit(3)"], env={})
        process = await LocalLauncher(hub).start(spec)
        assert await asyncio.wait_for(process.wait(), 30) == 3
        assert await process.exit_description() == "exited with code 3"
    finally:
        runner.cancel()
