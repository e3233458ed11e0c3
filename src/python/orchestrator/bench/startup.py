"""Startup benchmark of `up`: time until both services answer /health, and frontend reload time.

Scenarios, each a real `python -m orchestrator up` child process on free ports:

* cold:   the bench project's backend image and containers removed first (the base image kept);
* hot:    `up` again while the persistent backend container of the previous run still runs;
* warm:   image present, container removed (`down`);
* local:  `--backend local`;
* reload: with a local `up` running the frontend from a temporary copy of src/python/frontend
  (`--repo-root` puts that copy first on the frontend's PYTHONPATH and uvicorn watches it), the
  time from writing an edit of routes/config.py until /api/config shows it and /health is 200.

Goals (the orchestrator issue): hot <= 3 s, reload <= 2 s. Everything the bench starts belongs to a
bench-unique project and is removed at the end, on failure too.

    ./pants --concurrent run src/python/orchestrator/bench/startup.py -- --repeat 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from orchestrator.bench.startup_report import (
    COLD,
    HOT,
    LOCAL,
    RELOAD,
    SCENARIOS,
    WARM,
    Results,
    Sample,
    machine_line,
    table,
)
from orchestrator.testing import (
    Orchestrator,
    kill_project_processes,
    orchestrator_process,
    project_filter,
    remove_project_resources,
    run_orchestrator,
    stack_env,
)
from testsupport.base_image import ensure_local_base_image
from testsupport.polling import GaveUp, http_status, wait_for
from testsupport.processes import free_port

DEFAULT_BASE_IMAGE = "personaplex-local-base:bookworm"
# The loopback build: start-up is what is measured, not torch's import.
SERVER_PEX = Path("dist/src.python.moshi_backend/server-loopback.pex")
UP_PATTERN = re.compile(r"stack is up in ([\d.]+) s")
_POLL_S = 0.02
_CONTAINER = re.compile(r"backend container \w+ (created|reused|recreated)")
_RELOAD_EDIT = re.compile(r"^RECONNECT_DELAY_MS = \d+", re.MULTILINE)


class BenchError(RuntimeError):
    pass


def healthy(url: str) -> bool:
    answer = http_status(url)
    return answer is not None and answer[0] == 200


def find_repo_root() -> Path:
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for directory in (start, *start.parents):
            if (directory / "pants").is_file() and (directory / "src/python/frontend").is_dir():
                return directory
    raise BenchError("run from the repository (no ./pants with src/python/frontend above here)")


@dataclass
class Stack:
    """Settings shared by every `up` of one bench run: one project, its state, its ports."""

    project: str
    root: Path  # temporary: state, config, logs
    repo_root: Path
    base_image: str
    backend_pex: Path | None
    moshi_port: int = 0
    app_port: int = 0
    timeout_s: float = 300.0

    def new_ports(self) -> None:
        self.moshi_port, self.app_port = free_port(), free_port()

    def env(self) -> dict[str, str]:
        extra = {
            "PERSONAPLEX_HEALTH_TIMEOUT_S": str(self.timeout_s),
            "HF_CACHE_VOLUME": f"{self.project}-hf-cache",
            "MOSHI_BASE_IMAGE": self.base_image,
            "MOSHI_PORT": str(self.moshi_port),
            "APP_PORT": str(self.app_port),
        }
        if self.backend_pex is not None:
            extra["MOSHI_BACKEND_PEX"] = str(self.backend_pex)
        return stack_env(self.root, self.project, extra, token=None)

    def down(self) -> None:
        result = run_orchestrator(
            ["down", "--volumes", "--repo-root", str(self.repo_root)], self.env()
        )
        if result.returncode != 0:
            raise BenchError(f"`down` exited {result.returncode}: {result.stderr}")

    def backend_url(self) -> str:
        return f"http://127.0.0.1:{self.moshi_port}"

    def frontend_url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"


def reported_s(up: Orchestrator, timeout_s: float = 5.0) -> float | None:
    """The orchestrator's own "stack is up in N s"."""

    def probe() -> float | None:
        match = UP_PATTERN.search(up.output())
        return float(match.group(1)) if match else None

    try:
        return wait_for(probe, what="the up line", timeout_s=timeout_s, interval_s=_POLL_S)
    except GaveUp:
        return None


def until(up: Orchestrator, condition: Callable[[], bool], what: str, timeout_s: float) -> float:
    """Seconds since spawn at which condition() first held."""
    try:
        return up.wait_until(condition, what, timeout_s, interval_s=_POLL_S)
    except GaveUp as error:
        raise BenchError(str(error)) from None


def interrupt(up: Orchestrator) -> int:
    """Ctrl-C, as a user stops `up`; the exit code."""
    if up.process.poll() is not None:
        return up.process.returncode
    return up.signal_and_wait(signal.SIGINT)


@contextlib.contextmanager
def running_up(stack: Stack, *args: str) -> Iterator[Orchestrator]:
    """`up ARGS` as a child; on exit it and every process of the project are gone."""
    # Only a frontend of this very run may answer: a leftover would be measured instead.
    if http_status(f"{stack.frontend_url()}/health") is not None:
        raise BenchError(f"something already answers at {stack.frontend_url()}")
    command = ["up", "--repo-root", str(stack.repo_root), *args]
    with orchestrator_process(command, stack.env(), stack.project) as up:
        try:
            yield up
        finally:
            interrupt(up)


def time_up(stack: Stack, *args: str, container: str | None = None) -> Sample:
    """One `up` until both /health answer 200 (polled here), then SIGINT; with container, the
    backend container must have been `created` or `reused` as the scenario says."""
    with running_up(stack, *args) as up:
        health = [f"{stack.backend_url()}/health", f"{stack.frontend_url()}/health"]
        seconds = until(
            up, lambda: all(healthy(url) for url in health), "both /health 200", stack.timeout_s
        )
        reported = reported_s(up)
        code = interrupt(up)
        output = up.output()
        if code != 128 + signal.SIGINT:
            raise BenchError(f"`up` exited {code} on SIGINT:\n{output[-3000:]}")
    if container is not None:
        match = _CONTAINER.search(output)
        if match is None or match.group(1) != container:
            raise BenchError(f"expected the container {container}:\n{output[-3000:]}")
    return Sample(seconds, reported)


# --- Docker ----------------------------------------------------------------------------------


def remove_project_docker(stack: Stack, *, images: bool) -> None:
    """The project's containers, volume and network (and its images, if asked); never the base
    image."""
    with contextlib.closing(docker.from_env()) as client:
        remove_project_resources(
            client,
            stack.project,
            volume=f"{stack.project}-hf-cache",
            images=images,
            keep_image=stack.base_image,
        )


def project_images(stack: Stack) -> int:
    with contextlib.closing(docker.from_env()) as client:
        return len(client.images.list(filters=project_filter(stack.project)))


def ensure_base_image(tag: str) -> None:
    with contextlib.closing(docker.from_env()) as client:
        try:
            client.images.get(tag)
        except docker.errors.ImageNotFound:
            if tag != DEFAULT_BASE_IMAGE:
                raise BenchError(f"base image {tag} is not on this engine") from None
            print(f"building {tag} (debootstrap, about a minute)", flush=True)
            ensure_local_base_image(client, tag)


def docker_round(stack: Stack, results: Results, scenarios: Sequence[str]) -> None:
    """cold, hot (after cold), warm (after `down`), hot (after warm), on one pair of ports:
    the ports are part of the container's configuration, so hot can reuse it."""
    stack.new_ports()
    remove_project_docker(stack, images=True)
    if project_images(stack):
        raise BenchError(f"the images of {stack.project} could not be removed")
    if COLD in scenarios:
        results.add(COLD, time_up(stack, container="created"))
    if HOT in scenarios:
        if COLD not in scenarios:
            time_up(stack)  # something to reuse
        results.add(HOT, time_up(stack, container="reused"))
    if WARM in scenarios:
        stack.down()
        remove_project_docker(stack, images=False)
        if not project_images(stack):
            time_up(stack)  # warm needs the image
            stack.down()
        results.add(WARM, time_up(stack, container="created"))
        if HOT in scenarios:
            results.add(HOT, time_up(stack, container="reused"))
    stack.down()


# --- local and reload --------------------------------------------------------------------------


def local_round(stack: Stack, results: Results) -> Sample:
    stack.new_ports()
    sample = time_up(stack, "--backend", "local")
    results.add(LOCAL, sample)
    return sample


def frontend_copy(repo_root: Path, into: Path) -> Path:
    """A copy of src/python/frontend under into/src/python: `up --repo-root into` runs it."""
    target = into / "src" / "python" / "frontend"
    shutil.copytree(
        repo_root / "src" / "python" / "frontend",
        target,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    return target / "routes" / "config.py"


def reload_round(stack: Stack, results: Results, edits: int) -> None:
    """Edits of the copied routes/config.py while a local `up` runs: write to visible change."""
    tree = Path(tempfile.mkdtemp(prefix="reload-", dir=stack.root))
    config_py = frontend_copy(stack.repo_root, tree)
    original = config_py.read_text()
    if not _RELOAD_EDIT.search(original):
        raise BenchError(f"no `RECONNECT_DELAY_MS = N` line in {config_py} to edit")
    stack.new_ports()
    frontend_only = Stack(
        stack.project, stack.root, tree, stack.base_image, None, stack.moshi_port, stack.app_port
    )
    config_url, health_url = f"{stack.frontend_url()}/api/config", f"{stack.frontend_url()}/health"
    with running_up(frontend_only, "--backend", "local") as up:
        until(up, lambda: healthy(health_url), "frontend /health 200", stack.timeout_s)
        reported_s(up)
        for edit in range(1, edits + 1):
            wanted = 4000 + edit

            def shows_edit(wanted: int = wanted) -> bool:
                answer = http_status(config_url)
                if answer is None or answer[0] != 200:
                    return False
                shown = json.loads(answer[1]).get("reconnect_delay_ms") == wanted
                return shown and healthy(health_url)

            time.sleep(1.0)  # let the reloader settle after the previous restart
            written = time.monotonic()
            config_py.write_text(_RELOAD_EDIT.sub(f"RECONNECT_DELAY_MS = {wanted}", original))
            until(
                up,
                shows_edit,
                f"/api/config showing reconnect_delay_ms={wanted}",
                60,
            )
            results.add(RELOAD, Sample(time.monotonic() - written))
        code = interrupt(up)
        if code != 128 + signal.SIGINT:
            raise BenchError(f"`up` exited {code} on SIGINT:\n{up.output()[-3000:]}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=1, help="rounds per scenario (default 1)")
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)}",
    )
    parser.add_argument("--moshi-base-image", default=DEFAULT_BASE_IMAGE)
    parser.add_argument(
        "--backend-pex", type=Path, help=f"prebuilt server PEX (default {SERVER_PEX}, copied)"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="per `up`, seconds")
    args = parser.parse_args(argv)
    scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown or args.repeat < 1:
        parser.error(f"unknown scenarios {sorted(unknown)}" if unknown else "--repeat >= 1")

    repo_root = find_repo_root()
    project = f"bench-{uuid.uuid4().hex[:8]}"
    docker_wanted = bool({COLD, WARM, HOT} & set(scenarios))
    results = Results()
    print(f"project {project}; {machine_line()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="startup-bench-") as directory:
        root = Path(directory)
        pex = args.backend_pex or repo_root / SERVER_PEX
        backend_pex: Path | None = None
        if docker_wanted and pex.exists():
            # A copy: a concurrent `./pants package` must not change it between runs.
            backend_pex = root / "server.pex"
            if pex.is_dir():  # packed, as Pants packages the servers
                shutil.copytree(pex, backend_pex)
            else:
                shutil.copy2(pex, backend_pex)
        elif docker_wanted:
            print(f"no {pex}: every image build also packages the backend with Pants", flush=True)
        stack = Stack(
            project, root, repo_root, args.moshi_base_image, backend_pex, timeout_s=args.timeout
        )
        try:
            if docker_wanted:
                ensure_base_image(args.moshi_base_image)
            for round_number in range(1, args.repeat + 1):
                print(f"round {round_number}/{args.repeat}", flush=True)
                if docker_wanted:
                    docker_round(stack, results, scenarios)
                if LOCAL in scenarios:
                    local_round(stack, results)
            if RELOAD in scenarios:
                reload_round(stack, results, args.repeat)
        except BenchError as error:
            print(f"bench failed: {error}", file=sys.stderr)
            return 1
        finally:
            kill_project_processes(project)
            with contextlib.suppress(Exception):
                stack.down()
            if docker_wanted:
                remove_project_docker(stack, images=True)
        print()
        print(table(results))
        print(f"machine: {machine_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
