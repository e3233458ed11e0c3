"""`up`: the stack started and watched until Ctrl-C or a failure, with its dashboard, its log
archive and the signal handling that turns SIGINT/SIGTERM into an orderly stop."""

from __future__ import annotations

import asyncio
import signal
import sqlite3

from orchestrator import events
from orchestrator.dashboard.server import Dashboard
from orchestrator.environments import OTLP_ENDPOINT
from orchestrator.errors import OrchestratorError
from orchestrator.events import Level, Notice
from orchestrator.health.probe import HealthProbe, HttpProbe
from orchestrator.hub import EventHub
from orchestrator.masking import Masker
from orchestrator.printer import LogArchive
from orchestrator.processes.run_state import RunState
from orchestrator.settings import StackSettings
from orchestrator.stack.context import Seams
from orchestrator.stack.lifecycle import Controls
from orchestrator.stack.supervisor import Supervisor, refuse_if_running
from orchestrator.telemetry.receiver import DEFAULT_PORT as DEFAULT_OTLP_PORT
from orchestrator.telemetry.session import Telemetry
from stack_tls.certificates import CERT_FILE

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def up(
    settings: StackSettings,
    hub: EventHub,
    run_state: RunState,
    environ: dict[str, str],
    masker: Masker,
) -> int:
    """128+signal after Ctrl-C or SIGTERM, 1 when a service fails."""
    run_state.log_path(events.BACKEND).parent.mkdir(parents=True, exist_ok=True)
    archive = LogArchive(
        masker, {name: str(run_state.log_path(name)) for name in (events.BACKEND, events.FRONTEND)}
    )
    archive_sink = hub.attach(archive, "log archive")
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[int] = loop.create_future()

    def on_signal(signum: signal.Signals) -> None:
        if not stop.done():
            stop.set_result(int(signum))

    for signum in _STOP_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    # Before the services: they are told where it listens. Not for an `up` that is refused: it
    # would record a run.
    refuse_if_running(run_state, settings.project)
    telemetry = await _start_telemetry(settings, hub, run_state, environ, masker)
    supervisor = Supervisor(settings, hub, run_state, Seams(environ=environ), telemetry)
    probe = HttpProbe(run_state.certs_dir / CERT_FILE)
    try:
        dashboard = await _start_dashboard(
            settings, hub, supervisor.controls, masker, probe, telemetry
        )
    except BaseException:
        if telemetry is not None:
            await telemetry.stop()
        raise
    try:
        return await supervisor.up(stop)
    finally:
        for signum in _STOP_SIGNALS:
            loop.remove_signal_handler(signum)
        if dashboard is not None:
            await dashboard.stop()
        # After the services and the dashboard: what they sent last is in the history.
        if telemetry is not None:
            await telemetry.stop()
        await hub.drain()
        # Detached first: a late event must not reopen (and truncate) a closed log file.
        await hub.detach(archive_sink)
        archive.close()


async def _start_telemetry(
    settings: StackSettings,
    hub: EventHub,
    run_state: RunState,
    environ: dict[str, str],
    masker: Masker,
) -> Telemetry | None:
    """The receiver and the history, or None; like the dashboard's, a failure here costs the
    telemetry, never the stack."""
    try:
        telemetry = await Telemetry.start(
            run_state.directory,
            environ,
            enabled=settings.telemetry,
            port=settings.otlp_port,
            mask=masker,
        )
    except (OrchestratorError, OSError, sqlite3.Error) as error:
        text = error.message if isinstance(error, OrchestratorError) else str(error)
        await hub.publish(Notice(f"no telemetry this run: {text}", Level.WARNING))
        # The past runs stay viewable.
        try:
            return await Telemetry.start(run_state.directory, environ, enabled=False, port=None)
        except (OSError, sqlite3.Error):
            return None
    if telemetry.endpoint is None:
        return telemetry
    port = telemetry.receiver.port if telemetry.receiver else None
    if settings.otlp_port is None and port != DEFAULT_OTLP_PORT:
        await hub.publish(
            Notice(f"OTLP port {DEFAULT_OTLP_PORT} is taken; the receiver listens on {port}")
        )
    if telemetry.user_endpoint:
        await hub.publish(
            Notice(
                f"telemetry receiver at {telemetry.endpoint}, but the services export to the "
                f"caller's {OTLP_ENDPOINT}"
            )
        )
    else:
        await hub.publish(Notice(f"telemetry receiver at {telemetry.endpoint}"))
    return telemetry


async def _start_dashboard(
    settings: StackSettings,
    hub: EventHub,
    controls: Controls,
    masker: Masker,
    probe: HealthProbe,
    telemetry: Telemetry | None,
) -> Dashboard | None:
    """The dashboard, or None; a port in use costs the dashboard, never the stack."""
    if not settings.dashboard:
        return None
    dashboard = Dashboard(
        hub, controls, masker, port=settings.dashboard_port, probe=probe, telemetry=telemetry
    )
    try:
        url = await dashboard.start()
    except OrchestratorError as error:
        await hub.publish(Notice(error.message, Level.WARNING))
        return None
    await hub.publish(Notice(f"dashboard at {url}"))
    return dashboard
