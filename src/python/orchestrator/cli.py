"""Command line of the orchestrator: `./pants run orchestrator -- COMMAND` (default: up)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from orchestrator import events
from orchestrator.arguments import command_parser, setting_options
from orchestrator.clock import SystemClock
from orchestrator.commands.build import build
from orchestrator.commands.config import print_config
from orchestrator.commands.down import down
from orchestrator.commands.logs import logs
from orchestrator.commands.publish import publish
from orchestrator.commands.secrets import set_secret
from orchestrator.commands.status import status
from orchestrator.commands.telemetry import clear_telemetry
from orchestrator.commands.up import up
from orchestrator.containers.connection import connect_docker
from orchestrator.errors import OrchestratorError
from orchestrator.health.probe import HttpProbe
from orchestrator.hub import EventHub
from orchestrator.masking import Masker
from orchestrator.printer import TerminalPrinter
from orchestrator.processes.local_process import LocalLauncher
from orchestrator.processes.run_state import RunState, state_home
from orchestrator.settings import StackSettings, load_settings
from stack_settings.report import report_invalid_settings
from stack_tls.certificates import CERT_FILE


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = command_parser().parse_args(argv)
    command = args.command or "up"
    masker = Masker()
    try:
        if command == "secrets":
            return set_secret(args.name)
        settings = load_settings(setting_options(argv))
        masker = Masker(settings.secrets)
        if command == "config":
            return print_config(settings)
        if command == "publish":
            return publish(
                settings,
                output=args.output,
                image_prefix=args.image_prefix,
                image_tag=args.image_tag,
                backend_replicas=args.backend_replicas,
                cache_size=args.cache_size,
            )
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


async def _run(
    command: str, args: argparse.Namespace, settings: StackSettings, masker: Masker
) -> int:
    environ = dict(os.environ)
    run_state = RunState(state_home(environ), settings.project)
    printer = TerminalPrinter(masker)

    def say(text: str) -> None:
        print(masker(text))

    if command == "status":
        return await status(
            settings,
            run_state,
            probe=HttpProbe(run_state.certs_dir / CERT_FILE),
            connect_docker=connect_docker,
            say=say,
        )
    if command == "down":
        return await down(
            settings,
            run_state,
            connect_docker=connect_docker,
            clock=SystemClock(),
            say=say,
            remove_volume=args.volumes,
        )
    if command == "telemetry":  # its only action: clear
        return clear_telemetry(settings, run_state, say=say)
    if command == "logs":
        return await logs(
            settings,
            run_state,
            args.service,
            tail=args.tail,
            connect_docker=connect_docker,
            say_line=printer.line,
        )
    # `build` and `up` report through the event hub: progress bars, build output, services.
    hub = EventHub()
    hub.attach(printer, "terminal")
    hub_task = asyncio.create_task(hub.run(), name="event-hub")
    hub.bind()
    try:
        if command == "build":
            return await build(
                settings,
                hub,
                launcher=LocalLauncher(hub),
                connect_docker=connect_docker,
                environ=environ,
                say=lambda text: printer.line(events.ORCHESTRATOR, text),
            )
        return await up(settings, hub, run_state, environ, masker)
    finally:
        await hub.drain()
        await hub.close_sinks()
        hub_task.cancel()
        printer.close()
