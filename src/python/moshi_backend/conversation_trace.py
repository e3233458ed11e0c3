"""One conversation as one trace: `moshi.conversation` and its phases, in the order they happen.

The frame loop is one span with a summary (frames, dropped, late, step p50/p99) counted in
memory as frames pass: nothing per frame is exported, and ending a span only queues it for the
span processor's thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import context, trace
from opentelemetry.metrics import Histogram
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from moshi_backend.session_errors import ClientGone, ConversationOver
from moshi_backend.step_times import StepTimes

_PROPAGATOR = TraceContextTextMapPropagator()
# How a conversation may end without anything having failed.
_NOT_FAILURES = (ClientGone, ConversationOver, asyncio.CancelledError, GeneratorExit)


class ConversationTrace:
    def __init__(
        self,
        tracer: trace.Tracer,
        step_ms: Histogram,
        upgrade_headers: Mapping[str, str],
        label: str,
    ) -> None:
        self.label = label
        self._tracer = tracer
        self._step_ms = step_ms
        # A relay (the frontend) sends its own span as traceparent: the conversation is its child.
        parent = _PROPAGATOR.extract(upgrade_headers)
        self.span = tracer.start_span(
            "moshi.conversation",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"session": label},
        )
        self._inside = trace.set_span_in_context(self.span, context.Context())
        self._steps = StepTimes()
        self._dropped = 0
        self._late = 0
        self._close: trace.Span | None = None
        self._outcome: str | None = None
        self._error: str | None = None

    @contextmanager
    def current(self) -> Iterator[None]:
        """The conversation as the current span: log records made meanwhile carry its ids."""
        with trace.use_span(
            self.span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        ):
            yield

    @contextmanager
    def phase(self, name: str) -> Iterator[trace.Span]:
        """A child span around a phase; a failure is its status, with the error's text."""
        with self._tracer.start_as_current_span(
            name, context=self._inside, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                yield span
            except _NOT_FAILURES:
                raise
            except BaseException as error:
                span.set_status(Status(StatusCode.ERROR, getattr(error, "reason", str(error))))
                raise

    # The frame loop: called for each frame, so only counting here.

    def frame_done(self, seconds: float, late: bool) -> None:
        ms = seconds * 1000.0
        self._steps.add(ms)
        # The SDK aggregates in memory; the reader's thread exports every few seconds.
        self._step_ms.record(ms)
        if late:
            self._late += 1

    def frame_dropped(self) -> None:
        self._dropped += 1

    def summarise(self, span: trace.Span) -> None:
        """The frame loop's summary on span (the loop's) and on the conversation."""
        summary: dict[str, int | float] = {
            "frames": self._steps.count,
            "frames_dropped": self._dropped,
            "frames_late": self._late,
        }
        for name, q in (("step_ms_p50", 50), ("step_ms_p99", 99)):
            value = self._steps.percentile(q)
            if value is not None:
                summary[name] = round(value, 3)
        span.set_attributes(summary)
        self.span.set_attributes(summary)

    # The end.

    def begin_close(self) -> None:
        """From here the conversation is closing (engine slot, WebSocket); safe to call again."""
        if self._close is None:
            self._close = self._tracer.start_span("moshi.close", context=self._inside)

    def record_outcome(self, outcome: str, error: str | None = None) -> None:
        """How it ended (server.py's vocabulary); error: what failed, for outcome "error"."""
        self._outcome, self._error = outcome, error

    def end(self, close_code: int | None) -> None:
        self.begin_close()
        assert self._close is not None
        if self._outcome is not None:
            self._close.set_attribute("outcome", self._outcome)
            self.span.set_attribute("outcome", self._outcome)
        self._close.set_attribute("close_code", close_code or 0)
        self._close.end()
        if self._outcome == "error":
            self.span.set_status(Status(StatusCode.ERROR, self._error or "error"))
        self.span.end()
