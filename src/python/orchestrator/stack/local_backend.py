"""The backend as a local process: a model engine from the full server PEX (given, or packaged by
Pants), or the loopback engine from the orchestrator's own environment (no torch, starts in a
second)."""

from __future__ import annotations

import asyncio
import json
import zipfile
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from orchestrator import events
from orchestrator.containers.service_images import BACKEND_IMAGE, packaged_pex
from orchestrator.endpoints import Endpoint
from orchestrator.environments import local_backend_environment
from orchestrator.events import Level, Progress, ResourceKind, ResourceState, StateChanged
from orchestrator.settings import EngineChoice, GpuMode, StackSettings
from orchestrator.stack.context import StackContext
from orchestrator.stack.process_service import ProcessService, run_process_service

_MODEL_ENGINES = frozenset({EngineChoice.PERSONAPLEX, EngineChoice.MOSHI})
_LOOPBACK_ALTERNATIVE = (
    "the LOOPBACK development engine (echoes audio, no model) runs in the orchestrator's "
    "environment; --engine personaplex runs the model (on the CPU far slower than real time)"
)


@dataclass(frozen=True)
class LocalBackendChoice:
    engine: EngineChoice  # never AUTO
    # The full server PEX (torch and the model engines) rather than `python -m moshi_backend`.
    from_pex: bool
    notices: tuple[tuple[str, Level], ...]


def choose_local_backend(settings: StackSettings, gpus: list[str]) -> LocalBackendChoice:
    """What runs, and why, given the NVIDIA GPUs found (none looked for with MOSHI_GPU=off)."""
    notices: list[tuple[str, Level]] = []
    if settings.moshi_gpu is GpuMode.ON and not gpus:
        notices.append(
            (
                "MOSHI_GPU=on but no NVIDIA GPU found here; the backend runs on the CPU",
                Level.WARNING,
            )
        )
    engine = settings.moshi_engine
    if engine is EngineChoice.AUTO:
        if gpus:
            engine = EngineChoice.PERSONAPLEX
            notices.append((f"MOSHI_ENGINE=auto: NVIDIA GPU found ({gpus[0]})", Level.INFO))
        else:
            engine = EngineChoice.LOOPBACK
            why = "MOSHI_GPU=off" if settings.moshi_gpu is GpuMode.OFF else "no NVIDIA GPU here"
            notices.append((f"MOSHI_ENGINE=auto with {why}: {_LOOPBACK_ALTERNATIVE}", Level.INFO))
    model = engine in _MODEL_ENGINES
    # A PEX the user names is run whatever the engine: it is what they asked for.
    from_pex = model or settings.backend_pex is not None
    if model:
        device = " on the CPU (MOSHI_GPU=off)" if settings.moshi_gpu is GpuMode.OFF else ""
        notices.append(
            (f"the backend runs {engine.value.upper()}{device} from the server PEX", Level.INFO)
        )
    return LocalBackendChoice(engine, from_pex, tuple(notices))


def _unpacked(pex: Path, root: Path) -> bool:
    """Whether pex has made its environment under root before (pex keeps it in
    venvs/PEX_HASH/); unknown counts as not."""
    try:
        if pex.is_dir():
            info = (pex / "PEX-INFO").read_text()
        else:
            with zipfile.ZipFile(pex) as zipped:
                info = zipped.read("PEX-INFO").decode()
        return (root / "venvs" / str(json.loads(info)["pex_hash"])).is_dir()
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return False


def pex_root(environ: Mapping[str, str]) -> Path:
    """Where a server PEX unpacks its environment (gigabytes with torch) on its first start: the
    user's cache, kept across runs (a PEX_ROOT of the caller's may be a `pants run` sandbox's)."""
    cache = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME", "~")) / ".cache")
    return Path(cache).expanduser() / "personaplex" / "pex"


async def start_local_backend(stack: StackContext, owned: AsyncExitStack) -> Endpoint:
    s = stack.settings
    gpus = [] if s.moshi_gpu is GpuMode.OFF else await stack.seams.nvidia_gpus()
    choice = choose_local_backend(s, gpus)
    for text, level in choice.notices:
        await stack.say(text, level)
    endpoint = Endpoint(s.publish_host, s.moshi_port, stack.scheme)
    if choice.from_pex:
        service = await _pex_service(stack, choice.engine, endpoint)
    else:
        env = local_backend_environment(
            s, stack.process_environ(), engine=choice.engine, pythonpath=stack.pythonpath()
        )
        env["MOSHI_SSL_DIR"] = str(stack.run_state.certs_dir)
        service = ProcessService(stack, events.BACKEND, ["-m", "moshi_backend"], env, endpoint)
    await run_process_service(stack, owned, service)
    return endpoint


async def _pex_service(
    stack: StackContext, engine: EngineChoice, endpoint: Endpoint
) -> ProcessService:
    s = stack.settings
    await stack.hub.publish(
        StateChanged(
            events.BACKEND, ResourceState.BUILDING, "server PEX", kind=ResourceKind.PROCESS
        )
    )
    pex = await packaged_pex(
        BACKEND_IMAGE,
        target=BACKEND_IMAGE.pants_target,
        given=s.backend_pex,
        repo_root=s.repo_root,
        launcher=stack.launcher,
        hub=stack.hub,
        environ=stack.seams.environ,
    )
    root = pex_root(stack.seams.environ)
    env = local_backend_environment(s, stack.process_environ(), engine=engine, pex_root=str(root))
    env["MOSHI_SSL_DIR"] = str(stack.run_state.certs_dir)
    await stack.say(f"backend: server PEX {pex}")
    if not await asyncio.to_thread(_unpacked, pex, root):
        # Nothing answers /health meanwhile: this is the stage the gate would otherwise hide.
        await stack.hub.publish(
            Progress(events.BACKEND, None, f"first start: unpacking the PEX into {root}")
        )
    # Flags as the image's start.sh gives them: `ps` shows them, and they survive the PEX's
    # re-exec into its environment's interpreter, which is what the run record recognises.
    flags = ["--host", s.publish_host, "--port", str(s.moshi_port), "--engine", engine.value]
    return ProcessService(
        stack, events.BACKEND, [str(pex.resolve()), *flags], env, endpoint, recorded=flags
    )
