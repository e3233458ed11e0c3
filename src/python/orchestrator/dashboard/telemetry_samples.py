"""Conversations as the services record them, sent to a receiver by the OpenTelemetry SDK's own
exporters (real OTLP bodies): the pages' tests and the sample screenshots are fed with them.

Blocking (each span and log is exported as it ends): call from a thread other than the
receiver's loop.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from opentelemetry.trace import SpanKind, Status, StatusCode

from orchestrator import events
from orchestrator.telemetry import testing as otlp

LOGGER = "moshi_backend.server"
# The children of a conversation span, in the contract's order (a loopback engine has no
# persona prompt).
BACKEND_SPANS = (
    "moshi.upgrade",
    "moshi.params",
    "moshi.slot_wait",
    "moshi.handshake",
    "moshi.frame_loop",
    "moshi.close",
)


@dataclass(frozen=True)
class SampleTraces:
    conversation: str  # trace id of the completed conversation
    rejected: str  # trace id of the rejected one (an error span)


def send_conversations(endpoint: str, pace_s: float = 0.0) -> SampleTraces:
    """A completed conversation (the frontend's relay span, parent of the backend's conversation
    span and its children) and a rejected one, with log records inside and outside them.
    pace_s: how long each step lasts (0: as fast as it goes)."""
    frontend = otlp.tracer_provider(endpoint, events.FRONTEND)
    backend = otlp.tracer_provider(endpoint, events.BACKEND)
    logs_provider, handler = otlp.logging_handler(endpoint, events.BACKEND)
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    relay, server = frontend.get_tracer("frontend"), backend.get_tracer("moshi_backend")
    try:
        with relay.start_as_current_span("frontend.proxy", kind=SpanKind.SERVER) as proxy:
            proxy.set_attributes({"outcome": "completed", "close_code": 1000})
            with server.start_as_current_span(
                "moshi.conversation", kind=SpanKind.SERVER
            ) as conversation:
                conversation.set_attributes({"outcome": "completed", "session": "s1"})
                logger.info("conversation s1 started")
                for name in BACKEND_SPANS:
                    with server.start_as_current_span(name) as child:
                        child.set_attribute("step", name)
                        # The frame loop is the conversation's bulk.
                        time.sleep(pace_s * (8 if name == "moshi.frame_loop" else 1))
                logger.warning("3 frames late in s1")
        with server.start_as_current_span("moshi.conversation", kind=SpanKind.SERVER) as rejected:
            rejected.set_attribute("outcome", "rejected")
            with server.start_as_current_span("moshi.params") as params:
                time.sleep(pace_s)
                params.set_status(Status(StatusCode.ERROR, "unknown voice"))
            rejected.set_status(Status(StatusCode.ERROR, "rejected"))
            logger.error("rejected: unknown voice")
        logger.info("no conversation: idle")
    finally:
        logger.removeHandler(handler)
        for provider in (frontend, backend, logs_provider):
            provider.shutdown()
    return SampleTraces(
        format(conversation.get_span_context().trace_id, "032x"),
        format(rejected.get_span_context().trace_id, "032x"),
    )


def send_active_conversation(endpoint: str, step_ms: tuple[float, ...] = (20, 30, 40, 60)) -> None:
    """The backend's metrics during one conversation: one active, its model steps' times."""
    meters = otlp.meter_provider(endpoint, events.BACKEND)
    try:
        meter = meters.get_meter("moshi_backend")
        meter.create_up_down_counter("moshi.conversations.active", unit="conversations").add(1)
        steps = meter.create_histogram("moshi.step.duration", unit="ms")
        for value in step_ms:
            steps.record(value)
        if not meters.force_flush(10_000):
            raise TimeoutError("the metrics were not exported within 10 s")
    finally:
        meters.shutdown()
