"""What the service images are built from: each service's Dockerfile (the one `./pants package`
uses too), the files it copies and a PEX, in a context laid out as Pants' docker backend does."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from orchestrator import events
from orchestrator.containers.engine import BaseImageUnavailable, DockerEngine
from orchestrator.containers.image_pull import PullFailed
from orchestrator.errors import OrchestratorError
from orchestrator.events import Progress
from orchestrator.hub import EventHub
from orchestrator.processes.local_process import ProcessLauncher, ProcessSpec
from orchestrator.settings import EngineChoice, StackSettings

_PACKAGE_TIMEOUT_S = 1800.0
_BUILD_TIMEOUT_S = 1800.0
# A base given by MOSHI_BASE_IMAGE may be a CUDA framework image of several GB on a slow line.
_PULL_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class ImageRecipe:
    service: str
    dockerfile: str
    # Repository files the Dockerfile copies besides the PEX.
    files: tuple[str, ...]
    # Where the Dockerfile copies the PEX from: the path `./pants package` writes under dist/
    # (a directory: the services' PEX files are packed).
    pex_in_context: str
    pants_target: str
    # The Dockerfile's ARG naming its base image (the same name as the setting's variable).
    base_image_arg: str
    base_image_option: str
    pex_option: str
    # Where the service reads its certificate pair inside the image (MOSHI_SSL_DIR, APP_SSL_DIR).
    certs_dir: str

    def tag(self, project: str) -> str:
        return f"{project}-{self.service}:dev"


BACKEND_IMAGE = ImageRecipe(
    service=events.BACKEND,
    dockerfile="src/python/moshi_backend/Dockerfile",
    files=("src/python/moshi_backend/start.sh",),
    pex_in_context="src.python.moshi_backend/server.pex",
    pants_target="src/python/moshi_backend:server",
    base_image_arg="MOSHI_BASE_IMAGE",
    base_image_option="--moshi-base-image (MOSHI_BASE_IMAGE)",
    pex_option="--backend-pex (MOSHI_BACKEND_PEX)",
    certs_dir="/data/certs",
)
# The server without model engines (no torch): enough for MOSHI_ENGINE=loopback, packaged in
# seconds; the backend's Dockerfile takes it at the same context path.
BACKEND_LOOPBACK_TARGET = "src/python/moshi_backend:server-loopback"
FRONTEND_IMAGE = ImageRecipe(
    service=events.FRONTEND,
    dockerfile="src/python/frontend/Dockerfile",
    files=(),
    pex_in_context="src.python.frontend/app.pex",
    pants_target="src/python/frontend:app",
    base_image_arg="FRONTEND_BASE_IMAGE",
    base_image_option="--frontend-base-image (FRONTEND_BASE_IMAGE)",
    pex_option="--frontend-pex (FRONTEND_PEX)",
    certs_dir="/home/app/certs",
)


@dataclass(frozen=True)
class ImageBuild:
    """One image as the settings ask for it."""

    recipe: ImageRecipe
    base_image: str
    given_pex: Path | None
    target: str


def backend_build(settings: StackSettings, gpu: bool) -> ImageBuild:
    """The full server when a model engine will run; without torch (gigabytes, minutes to
    package) when only the loopback engine can: MOSHI_ENGINE=loopback, or auto without a GPU for
    the container (the server's own `auto` picks the loopback engine there)."""
    engine = settings.moshi_engine
    loopback = engine is EngineChoice.LOOPBACK or (engine is EngineChoice.AUTO and not gpu)
    target = BACKEND_LOOPBACK_TARGET if loopback else BACKEND_IMAGE.pants_target
    return ImageBuild(BACKEND_IMAGE, settings.moshi_base_image, settings.backend_pex, target)


def frontend_build(settings: StackSettings) -> ImageBuild:
    return ImageBuild(
        FRONTEND_IMAGE,
        settings.frontend_base_image,
        settings.frontend_pex,
        FRONTEND_IMAGE.pants_target,
    )


def _dist_path(target: str) -> str:
    # Pants' default output path of a pex_binary: the directory dotted, then the target's name.
    directory, _, name = target.partition(":")
    return f"{directory.replace('/', '.')}/{name}.pex"


async def packaged_pex(
    recipe: ImageRecipe,
    *,
    target: str,
    given: Path | None,
    repo_root: Path,
    launcher: ProcessLauncher,
    hub: EventHub,
    environ: Mapping[str, str],
) -> Path:
    """The PEX given by the recipe's option, or one that `./pants --concurrent package` makes."""
    if given is not None:
        if not given.exists():
            raise OrchestratorError(f"{recipe.pex_option.split()[0]} {given}: no such PEX")
        return given
    pants = repo_root / "pants"
    if not pants.is_file():
        raise OrchestratorError(
            f"no ./pants in {repo_root.resolve()} to package {target}; "
            f"run from the repository root, or pass {recipe.pex_option}"
        )
    # The packaging's output is the service's, as the image build's is (its console log).
    await hub.publish(Progress(recipe.service, None, f"packaging {target} with Pants"))
    # --concurrent: this runs inside `./pants run orchestrator`, whose lock a plain nested
    # call would wait for forever.
    spec = ProcessSpec(
        recipe.service,
        [str(pants.resolve()), "--concurrent", "package", target],
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
        raise OrchestratorError(f"`./pants package {target}` exited with code {code}")
    built = repo_root / "dist" / _dist_path(target)
    if not built.exists():
        raise OrchestratorError(f"Pants reported success but {built} does not exist")
    return built


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)  # the PEX is tens of MB (GB with torch): no copy if possible
    except OSError:
        shutil.copy2(source, target)


def assemble_context(repo_root: Path, recipe: ImageRecipe, pex: Path, directory: Path) -> Path:
    """A build context laid out as the Dockerfile expects, holding only what it copies."""
    for relative in (recipe.dockerfile, *recipe.files):
        source = repo_root / relative
        if not source.is_file():
            raise OrchestratorError(
                f"{source} not found: run from the repository root or pass --repo-root"
            )
        (directory / relative).parent.mkdir(parents=True, exist_ok=True)
        _link_or_copy(str(source), str(directory / relative))
    target = directory / recipe.pex_in_context
    target.parent.mkdir(parents=True, exist_ok=True)
    # A packed PEX is a directory; a zipapp (an older --backend-pex) is one file: both COPY alike.
    if pex.is_dir():
        shutil.copytree(pex, target, copy_function=_link_or_copy)
    else:
        _link_or_copy(str(pex), str(target))
    return directory


async def require_base_image(
    engine: DockerEngine, recipe: ImageRecipe, base_image: str, consequence: str = ""
) -> None:
    """BaseImageUnavailable, naming why and the option that picks another, unless the base is
    there or could be pulled."""
    try:
        await engine.ensure_image(
            base_image, timeout_s=_PULL_TIMEOUT_S, for_resource=recipe.service
        )
    except PullFailed as error:
        raise BaseImageUnavailable(
            f"base image {base_image} is not present and cannot be pulled ({error.message}); "
            f"pass a local one with {recipe.base_image_option}{consequence}"
        ) from error


async def build_service_image(
    engine: DockerEngine,
    build: ImageBuild,
    *,
    repo_root: Path,
    launcher: ProcessLauncher,
    environ: Mapping[str, str],
) -> str:
    """The id of the service's image, built (or found in the layer cache) on engine, for
    engine's project."""
    recipe = build.recipe
    pex = await packaged_pex(
        recipe,
        target=build.target,
        given=build.given_pex,
        repo_root=repo_root,
        launcher=launcher,
        hub=engine.hub,
        environ=environ,
    )
    with tempfile.TemporaryDirectory(prefix="personaplex-context-") as directory:
        context = await asyncio.to_thread(assemble_context, repo_root, recipe, pex, Path(directory))
        return await engine.build(
            context,
            dockerfile=recipe.dockerfile,
            tag=recipe.tag(engine.project),
            buildargs={recipe.base_image_arg: build.base_image},
            timeout_s=_BUILD_TIMEOUT_S,
            resource=recipe.service,
        )
