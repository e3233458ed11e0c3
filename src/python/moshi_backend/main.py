"""The backend command line; every flag can also be set by an environment variable."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web
from pydantic import ValidationError

from moshi_backend.access_log import QuietPollsAccessLogger
from moshi_backend.engines.base import EngineError
from moshi_backend.engines.selection import create_engine
from moshi_backend.server import ChatServer, ServerOptions
from moshi_backend.settings import BackendSettings, DeviceChoice, EngineName, QuantizeChoice
from moshi_protocol.privacy import RedactChatQueries, redact_logging_handlers
from stack_settings.report import report_invalid_settings
from stack_telemetry.otel import TelemetryHandle, setup_telemetry
from stack_telemetry.process_metrics import register_process_metrics
from stack_tls.certificates import server_ssl_context

log = logging.getLogger("moshi_backend")

# The orchestrator's name for this resource (orchestrator.events.BACKEND): its dashboard files
# what this service exports under it.
BACKEND_SERVICE_NAME = "moshi-backend"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moshi-backend",
        description="Moshi-protocol speech-to-speech server. Flags override the environment.",
    )
    add = parser.add_argument
    add("--host", dest="moshi_host", help="address to bind (MOSHI_HOST, default 127.0.0.1)")
    add("--port", dest="moshi_port", type=int, help="port (MOSHI_PORT, default 8998)")
    add(
        "--engine",
        dest="moshi_engine",
        choices=[e.value for e in EngineName],
        help="MOSHI_ENGINE, default auto",
    )
    add(
        "--ssl",
        dest="moshi_use_ssl",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="serve HTTPS/WSS (MOSHI_USE_SSL)",
    )
    add("--ssl-dir", dest="moshi_ssl_dir", type=Path, help="cert.pem/key.pem (MOSHI_SSL_DIR)")
    add("--max-sessions", dest="moshi_max_sessions", type=int, help="MOSHI_MAX_SESSIONS")
    add("--hf-repo", dest="moshi_hf_repo", help="model hub id or directory (MOSHI_HF_REPO)")
    add(
        "--device",
        dest="moshi_device",
        choices=[d.value for d in DeviceChoice],
        help="MOSHI_DEVICE, default auto",
    )
    add("--voice-dir", dest="moshi_voice_dir", type=Path, help="voice prompts (MOSHI_VOICE_DIR)")
    add(
        "--cpu-offload",
        dest="moshi_cpu_offload",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep the layers that do not fit the GPU on the CPU (MOSHI_CPU_OFFLOAD)",
    )
    add(
        "--quantize",
        dest="moshi_quantize",
        choices=[q.value for q in QuantizeChoice],
        help="the LM's weights in int8 or fp8 (MOSHI_QUANTIZE, default none)",
    )
    add(
        "--loopback-delay-ms",
        dest="moshi_loopback_delay_ms",
        type=int,
        help="MOSHI_LOOPBACK_DELAY_MS, default 0",
    )
    add(
        "--idle-timeout-s",
        dest="moshi_idle_timeout_s",
        type=float,
        help="end a conversation without audio from its client this long (MOSHI_IDLE_TIMEOUT_S, "
        "default 30, 0 off)",
    )
    add(
        "--max-conversation-s",
        dest="moshi_max_conversation_s",
        type=float,
        help="longest conversation (MOSHI_MAX_CONVERSATION_S; default the engine's, 0 no limit)",
    )
    add("--otel-endpoint", dest="otel_exporter_otlp_endpoint", help="OTEL_EXPORTER_OTLP_ENDPOINT")
    return parser


def load_settings(argv: Sequence[str] | None) -> BackendSettings:
    args = _parser().parse_args(argv)
    overrides = {name: value for name, value in vars(args).items() if value is not None}
    # Init arguments take precedence over the environment in pydantic-settings.
    return BackendSettings(**overrides)


def server_options(settings: BackendSettings) -> ServerOptions:
    return ServerOptions(
        idle_timeout_s=settings.moshi_idle_timeout_s,
        max_conversation_s=settings.moshi_max_conversation_s,
        allowed_origins=settings.moshi_allowed_origins,
        api_key=settings.moshi_api_key.get_secret_value() if settings.moshi_api_key else None,
    )


async def serve(settings: BackendSettings, stop: asyncio.Event) -> None:
    # Both block (the collector probe up to 2 s, the final export a few): off the loop.
    telemetry = await asyncio.to_thread(
        setup_telemetry,
        BACKEND_SERVICE_NAME,
        settings.otel_exporter_otlp_endpoint,
        metric_export_interval_ms=settings.otel_metric_export_interval,
        # The access log's request lines carry chat URLs with the persona in their query.
        log_filters=[RedactChatQueries()],
    )
    try:
        await _serve(settings, stop, telemetry)
    finally:
        await asyncio.to_thread(telemetry.shutdown)


async def _serve(
    settings: BackendSettings, stop: asyncio.Event, telemetry: TelemetryHandle
) -> None:
    engine = create_engine(settings)
    register_process_metrics(telemetry.meter)
    server = ChatServer(
        engine, server_options(settings), tracer=telemetry.tracer, meter=telemetry.meter
    )
    app = web.Application()
    server.install(app)
    ssl_context = None
    if settings.moshi_use_ssl:
        ssl_context = server_ssl_context(settings.moshi_ssl_dir, settings.moshi_host)
    runner = web.AppRunner(app, handle_signals=False, access_log_class=QuietPollsAccessLogger)
    await runner.setup()
    try:
        site = web.TCPSite(
            runner, settings.moshi_host, settings.moshi_port, ssl_context=ssl_context
        )
        await site.start()
        scheme = "https" if ssl_context else "http"
        info = engine.info
        log.warning(
            "engine %s%s (model %s, device %s); listening on %s://%s:%d",
            info.name.upper(),
            " [DEVELOPMENT, no model]" if info.development else "",
            info.model,
            info.device,
            scheme,
            settings.moshi_host,
            settings.moshi_port,
        )
        loading = asyncio.create_task(server.load())
        await stop.wait()
        loading.cancel()
    finally:
        await runner.cleanup()
        await server.shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # The access log's request lines carry chat URLs with the persona in their query.
    redact_logging_handlers()
    try:
        settings = load_settings(argv)
    except ValidationError as error:
        return report_invalid_settings("moshi-backend", error)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await serve(settings, stop)

    try:
        asyncio.run(run())
    except (EngineError, OSError) as error:
        print(f"moshi-backend: {error}", file=sys.stderr)
        return 1
    return 0
