"""What the backend image is built from: its Dockerfile, start.sh and the server PEX."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from orchestrator import events
from orchestrator.docker_backend import DockerEngine
from orchestrator.errors import OrchestratorError
from orchestrator.events import Progress
from orchestrator.hub import EventHub
from orchestrator.local_process import ProcessLauncher, ProcessSpec

DOCKERFILE = "src/python/moshi_backend/Dockerfile"
START_SCRIPT = "src/python/moshi_backend/start.sh"
# Where Pants' docker backend would put the PEX in a context, and where `package` writes it.
PEX_IN_CONTEXT = "src.python.moshi_backend/server.pex"
PANTS_TARGET = "src/python/moshi_backend:server"
_PACKAGE_TIMEOUT_S = 1800.0
_BUILD_TIMEOUT_S = 1800.0


def image_tag(project: str) -> str:
    return f"{project}-moshi-backend:dev"


async def server_pex(
    *,
    given: Path | None,
    repo_root: Path,
    launcher: ProcessLauncher,
    hub: EventHub,
    environ: Mapping[str, str],
) -> Path:
    """The PEX given by --backend-pex, or one that `./pants --concurrent package` makes now."""
    if given is not None:
        if not given.is_file():
            raise OrchestratorError(f"--backend-pex {given}: no such file")
        return given
    pants = repo_root / "pants"
    if not pants.is_file():
        raise OrchestratorError(
            f"no ./pants in {repo_root.resolve()} to package the backend; "
            "run from the repository root, or pass --backend-pex (MOSHI_BACKEND_PEX)"
        )
    await hub.publish(Progress(events.BUILD, None, f"packaging {PANTS_TARGET} with Pants"))
    # --concurrent: this runs inside `./pants run orchestrator`, whose lock a plain nested
    # call would wait for forever.
    spec = ProcessSpec(
        events.BUILD,
        [str(pants.resolve()), "--concurrent", "package", PANTS_TARGET],
        env=dict(environ),
        cwd=repo_root,
    )
    process = await launcher.start(spec)
    try:
        code = await asyncio.wait_for(process.wait(), _PACKAGE_TIMEOUT_S)
    except (TimeoutError, asyncio.CancelledError):
        await process.stop(grace_s=5.0)
        raise
    await process.logs_done(timeout_s=5.0)
    if code != 0:
        raise OrchestratorError(f"`./pants package {PANTS_TARGET}` exited with code {code}")
    built = repo_root / "dist" / PEX_IN_CONTEXT
    if not built.is_file():
        raise OrchestratorError(f"Pants reported success but {built} does not exist")
    return built


def assemble_context(repo_root: Path, pex: Path, directory: Path) -> Path:
    """A build context laid out as the Dockerfile expects, holding only these three files."""
    sources = {DOCKERFILE: repo_root / DOCKERFILE, START_SCRIPT: repo_root / START_SCRIPT}
    sources[PEX_IN_CONTEXT] = pex
    for relative, source in sources.items():
        if not source.is_file():
            raise OrchestratorError(
                f"{source} not found: run from the repository root or pass --repo-root"
            )
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)  # the PEX is tens of MB: no copy when one file system
        except OSError:
            shutil.copy2(source, target)
    return directory


async def build_backend_image(
    engine: DockerEngine,
    *,
    project: str,
    base_image: str,
    given_pex: Path | None,
    repo_root: Path,
    launcher: ProcessLauncher,
    hub: EventHub,
    environ: Mapping[str, str],
) -> str:
    """The id of the backend image, built (or found in the layer cache) on engine."""
    pex = await server_pex(
        given=given_pex, repo_root=repo_root, launcher=launcher, hub=hub, environ=environ
    )
    with tempfile.TemporaryDirectory(prefix="personaplex-context-") as directory:
        context = await asyncio.to_thread(assemble_context, repo_root, pex, Path(directory))
        return await engine.build(
            context,
            dockerfile=DOCKERFILE,
            tag=image_tag(project),
            buildargs={"BASE_IMAGE": base_image},
            timeout_s=_BUILD_TIMEOUT_S,
        )
