"""Command line of the orchestrator: `./pants run orchestrator -- COMMAND` (default: up)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orchestrator import control, events
from orchestrator.clock import SystemClock
from orchestrator.dashboard.server import Dashboard
from orchestrator.docker_backend import connect_docker
from orchestrator.errors import OrchestratorError
from orchestrator.events import Level, Notice
from orchestrator.health_gate import HttpProbe
from orchestrator.hub import EventHub
from orchestrator.lifecycle import Controls
from orchestrator.local_process import LocalLauncher
from orchestrator.masking import Masker
from orchestrator.printer import LogArchive, TerminalPrinter
from orchestrator.publish.model import DEFAULT_IMAGE_PREFIX, deployment
from orchestrator.publish.writer import write
from orchestrator.runstate import RunState, state_home
from orchestrator.secret_store import KNOWN_SECRETS, SecretStore
from orchestrator.settings import (
    CONFIG_FILE_VARIABLE,
    BackendMode,
    EngineChoice,
    GpuMode,
    StackSettings,
    load_settings,
)
from orchestrator.supervisor import Seams, Supervisor
from stack_settings.report import report_invalid_settings

EPILOG = """\
Every option can also come from an environment variable (shown in brackets) or a TOML config
file (--config, or PERSONAPLEX_CONFIG) whose keys are those variables, e.g. `moshi_port = 9000`.
Precedence: option > environment > config file > default. HF_TOKEN comes from the environment
or from `orchestrator secrets set HF_TOKEN` (stored in ~/.config/personaplex/secrets.toml, 0600).
"""


def _settings_options() -> argparse.ArgumentParser:
    # SUPPRESS: an option not given leaves no attribute, so the environment and the config
    # file are not overridden by argparse defaults (and subcommands do not reset top-level ones).
    parser = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    group = parser.add_argument_group("stack configuration")
    add = group.add_argument
    add(
        "--config",
        dest="config_file",
        type=Path,
        metavar="FILE",
        help=f"TOML settings file [{CONFIG_FILE_VARIABLE}]",
    )
    add("--project", help="name of this stack's containers and state [PERSONAPLEX_PROJECT]")
    add(
        "--backend",
        choices=[m.value for m in BackendMode],
        help="where the backend runs; auto: Docker when an engine answers [MOSHI_BACKEND]",
    )
    add("--backend-pex", type=Path, metavar="PEX", help="prebuilt server PEX [MOSHI_BACKEND_PEX]")
    add("--moshi-base-image", metavar="IMAGE", help="base of the backend image [MOSHI_BASE_IMAGE]")
    add(
        "--frontend-base-image",
        metavar="IMAGE",
        help="base of the frontend image (--prod) [FRONTEND_BASE_IMAGE]",
    )
    add(
        "--prod",
        action=argparse.BooleanOptionalAction,
        help="run the frontend as a container too, without reload [PERSONAPLEX_PROD, off]",
    )
    add("--frontend-pex", type=Path, metavar="PEX", help="prebuilt app PEX (--prod) [FRONTEND_PEX]")
    add("--moshi-port", type=int, metavar="PORT", help="backend port [MOSHI_PORT, 8998]")
    add("--app-port", type=int, metavar="PORT", help="frontend port [APP_PORT, 8010]")
    add("--app-host", metavar="ADDRESS", help="frontend bind address [APP_HOST, 127.0.0.1]")
    add(
        "--publish-host",
        metavar="ADDRESS",
        help="host address the backend is published on [MOSHI_PUBLISH_HOST, 127.0.0.1]",
    )
    add("--gpu", dest="moshi_gpu", choices=[g.value for g in GpuMode], help="[MOSHI_GPU, auto]")
    add(
        "--engine",
        dest="moshi_engine",
        choices=[e.value for e in EngineChoice],
        help="[MOSHI_ENGINE]",
    )
    add(
        "--hf-repo",
        dest="moshi_hf_repo",
        help="model hub repository or directory; default: the engine's own [MOSHI_HF_REPO]",
    )
    add(
        "--ssl", dest="moshi_use_ssl", action=argparse.BooleanOptionalAction, help="[MOSHI_USE_SSL]"
    )
    add(
        "--cpu-offload",
        dest="moshi_cpu_offload",
        action=argparse.BooleanOptionalAction,
        help="[MOSHI_CPU_OFFLOAD]",
    )
    add(
        "--persistent",
        action=argparse.BooleanOptionalAction,
        help="keep the backend container across runs and reuse it [MOSHI_PERSISTENT, on]",
    )
    add("--hf-cache-volume", metavar="VOLUME", help="model cache volume [HF_CACHE_VOLUME]")
    add(
        "--health-timeout",
        dest="health_timeout_s",
        type=float,
        metavar="SECONDS",
        help="per service [PERSONAPLEX_HEALTH_TIMEOUT_S, 600]",
    )
    add("--repo-root", type=Path, metavar="DIR", help="[PERSONAPLEX_REPO_ROOT, .]")
    add(
        "--dashboard",
        action=argparse.BooleanOptionalAction,
        help="serve the dashboard on loopback during `up` [PERSONAPLEX_DASHBOARD, on]",
    )
    add(
        "--dashboard-port",
        type=int,
        metavar="PORT",
        help="[PERSONAPLEX_DASHBOARD_PORT, 15000]",
    )
    return parser


def _parser() -> argparse.ArgumentParser:
    options = _settings_options()
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="PersonaPlex voice stack orchestrator (the Aspire AppHost's replacement).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[options],
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_text, description=help_text, parents=[options])

    command("up", "start the stack, gate on health, relay logs until Ctrl-C (the default)")
    down = command("down", "stop everything of the project, persistent container included")
    down.add_argument("--volumes", action="store_true", help="also remove the model cache volume")
    command("status", "show what runs, whether it is healthy, and where")
    logs = command("logs", "print the last lines of a service (or of all)")
    logs.add_argument("service", nargs="?", choices=[events.BACKEND, events.FRONTEND])
    logs.add_argument("--tail", type=int, default=100, help="lines per service (default 100)")
    command("build", "build the backend image (with --prod, the frontend image too)")
    command("config", "print the resolved configuration (secrets masked)")
    publish = command(
        "publish", "write a docker compose file and Kubernetes manifests for deployment"
    )
    publish.add_argument(
        "--output", type=Path, default=Path("dist/deploy"), help="directory (default dist/deploy)"
    )
    publish.add_argument(
        "--image-prefix",
        default=DEFAULT_IMAGE_PREFIX,
        help=f"registry and namespace of the images (default {DEFAULT_IMAGE_PREFIX})",
    )
    publish.add_argument(
        "--image-tag", help="tag of both images (default: APP_VERSION in pants.toml)"
    )
    publish.add_argument(
        "--backend-replicas",
        type=int,
        default=1,
        help="backend replicas in Kubernetes; the frontend picks a free one (default 1)",
    )
    publish.add_argument(
        "--cache-size", default="50Gi", help="model cache claim per backend replica (default 50Gi)"
    )
    secrets = command("secrets", "store a secret in the user's secrets file")
    actions = secrets.add_subparsers(dest="secrets_action", metavar="ACTION", required=True)
    setter = actions.add_parser("set", help="read the value from stdin (not echoed) and store it")
    setter.add_argument("name", choices=KNOWN_SECRETS)
    return parser


def _setting_options(argv: Sequence[str]) -> dict[str, Any]:
    """The stack settings given as options: what the settings parser alone finds in argv
    (options not given leave no attribute, so they do not hide the environment)."""
    given, _ = _settings_options().parse_known_args(argv)
    return vars(given)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    command = args.command or "up"
    masker = Masker()
    try:
        if command == "secrets":
            return _set_secret(args.name)
        settings = load_settings(_setting_options(argv))
        masker = Masker([settings.token] if settings.token else [])
        if command == "config":
            return _print_config(settings)
        if command == "publish":
            return _publish(args, settings)
        return asyncio.run(_run(command, args, settings, masker))
    except ValidationError as error:
        return report_invalid_settings("orchestrator", error)
    except OrchestratorError as error:
        print(f"orchestrator: {masker(error.message)}", file=sys.stderr)
        if error.details:
            print(masker(error.details), file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 128 + signal.SIGINT


def _print_config(settings: StackSettings) -> int:
    rows = settings.describe()
    width = max(len(name) for name in rows)
    for name, value in rows.items():
        print(f"{name:<{width}}  {value}")
    return 0


def _publish(args: argparse.Namespace, settings: StackSettings) -> int:
    if args.backend_replicas < 1:
        raise OrchestratorError("--backend-replicas must be at least 1", exit_code=2)
    target = deployment(
        settings,
        image_prefix=args.image_prefix,
        image_tag=args.image_tag,
        backend_replicas=args.backend_replicas,
        cache_size=args.cache_size,
    )
    written = write(target, args.output)
    for path in written:
        print(f"wrote {path}")
    print(f"images: {target.backend_image}, {target.frontend_image}; see {args.output}/NOTES.md")
    return 0


def _set_secret(name: str) -> int:
    store = SecretStore.default(os.environ)
    if sys.stdin.isatty():
        value = getpass.getpass(f"{name} (not echoed): ")
    else:
        value = sys.stdin.readline()
    store.set(name, value.strip())
    print(f"stored {name} in {store.path} (mode 600)")
    return 0


async def _run(
    command: str, args: argparse.Namespace, settings: StackSettings, masker: Masker
) -> int:
    environ = dict(os.environ)
    run_state = RunState(state_home(environ), settings.project)
    printer = TerminalPrinter(masker)

    def say(text: str) -> None:
        print(masker(text))

    if command == "status":
        return await control.status(
            settings, run_state, probe=HttpProbe(), connect_docker=connect_docker, say=say
        )
    if command == "down":
        return await control.down(
            settings,
            run_state,
            connect_docker=connect_docker,
            clock=SystemClock(),
            say=say,
            remove_volume=args.volumes,
        )
    if command == "logs":
        return await control.logs(
            settings,
            run_state,
            args.service,
            tail=args.tail,
            connect_docker=connect_docker,
            say_line=printer.line,
        )
    hub = EventHub()
    hub.subscribe(printer)
    hub_task = asyncio.create_task(hub.run(), name="event-hub")
    hub.bind()
    try:
        if command == "build":
            return await control.build(
                settings,
                hub,
                launcher=LocalLauncher(hub),
                connect_docker=connect_docker,
                environ=environ,
                say=lambda text: printer.line(events.ORCHESTRATOR, text),
            )
        return await _up(settings, hub, run_state, environ, masker)
    finally:
        await hub.drain()
        hub_task.cancel()
        printer.close()


async def _up(
    settings: StackSettings,
    hub: EventHub,
    run_state: RunState,
    environ: dict[str, str],
    masker: Masker,
) -> int:
    run_state.log_path(events.BACKEND).parent.mkdir(parents=True, exist_ok=True)
    archive = LogArchive(
        masker, {name: str(run_state.log_path(name)) for name in (events.BACKEND, events.FRONTEND)}
    )
    hub.subscribe(archive)
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[int] = loop.create_future()

    def on_signal(signum: signal.Signals) -> None:
        if not stop.done():
            stop.set_result(int(signum))

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    supervisor = Supervisor(settings, hub, run_state, Seams(environ=environ))
    dashboard = await _start_dashboard(settings, hub, supervisor.controls, masker)
    try:
        return await supervisor.up(stop)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        if dashboard is not None:
            await dashboard.stop()
        await hub.drain()
        archive.close()


async def _start_dashboard(
    settings: StackSettings, hub: EventHub, controls: Controls, masker: Masker
) -> Dashboard | None:
    """The dashboard, or None; a port in use costs the dashboard, never the stack."""
    if not settings.dashboard:
        return None
    dashboard = Dashboard(hub, controls, masker, port=settings.dashboard_port)
    try:
        url = await dashboard.start()
    except OrchestratorError as error:
        await hub.publish(Notice(error.message, Level.WARNING))
        return None
    await hub.publish(Notice(f"dashboard at {url}"))
    return dashboard
