"""A fake OTLP/HTTP collector on a loopback port, for the tests of every service's telemetry."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# A held export is released at the latest after this long, so no test can hang on one.
_HOLD_LIMIT_S = 60.0
_POLL_S = 0.05


@dataclass
class ReceivedExport:
    path: str
    body: bytes
    arrived_at: float  # time.monotonic()
    content_encoding: str = ""
    # When the exporter hung up on a held request (its own timeout); None while it waits.
    abandoned_at: float | None = None


class FakeCollector:
    """Answers HEAD (405, as a real collector does); answers POSTs with 200, or holds them.

    With keep=False it answers and forgets (a benchmark's sink), counting what came.
    """

    def __init__(self, *, hold_exports: bool, keep: bool = True) -> None:
        self.hold_exports = hold_exports
        self.keep = keep
        self.posts = 0
        self.heads = 0
        self.exports: list[ReceivedExport] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.collector = self
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": _POLL_S},
            name="fake-collector",
        )

    @property
    def endpoint(self) -> str:
        """The base URL, as OTEL_EXPORTER_OTLP_ENDPOINT would give it."""
        return f"http://127.0.0.1:{self._server.server_port}"

    def snapshot(self) -> list[ReceivedExport]:
        with self.lock:
            return list(self.exports)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.stopping.set()  # releases held requests
        self._server.shutdown()
        self._thread.join(timeout=10)
        # Joins the request threads, which stopping has released.
        self._server.server_close()


@contextmanager
def fake_collector(*, hold_exports: bool = False, keep: bool = True) -> Iterator[FakeCollector]:
    collector = FakeCollector(hold_exports=hold_exports, keep=keep)
    collector.start()
    try:
        yield collector
    finally:
        collector.close()


class _Server(ThreadingHTTPServer):
    collector: FakeCollector
    # Request threads are joined on close rather than left running.
    daemon_threads = False


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_HEAD(self) -> None:
        with self.server.collector.lock:
            self.server.collector.heads += 1
        self.send_response(405)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        collector = self.server.collector
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        encoding = self.headers.get("Content-Encoding", "")
        export = ReceivedExport(self.path, body, time.monotonic(), encoding)
        with collector.lock:
            collector.posts += 1
            if collector.keep:
                collector.exports.append(export)
        if collector.hold_exports:
            self._hold(export)
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")  # an empty ExportTraceServiceResponse
        self.end_headers()

    def _hold(self, export: ReceivedExport) -> None:
        """Never answer; return when the exporter hangs up or the collector closes."""
        deadline = time.monotonic() + _HOLD_LIMIT_S
        while not self.server.collector.stopping.is_set() and time.monotonic() < deadline:
            readable, _, _ = select.select([self.connection], [], [], _POLL_S)
            if not readable:
                continue
            try:
                gone = not self.connection.recv(1, socket.MSG_PEEK)
            except OSError:
                gone = True
            if gone:
                with self.server.collector.lock:
                    export.abandoned_at = time.monotonic()
                return
            self.server.collector.stopping.wait(_POLL_S)  # bytes we will not read: no busy loop

    def log_message(self, format: str, *args: object) -> None:
        pass  # the tests assert on what arrived; a line per request is noise


# The threads the SDK and stack_telemetry.otel start; a test waits for them to end.
TELEMETRY_THREADS = (
    "OtelBatch",  # the span and the log record processors
    "OtelPeriodicExportingMetricReader",
    "telemetry-probe",
    "telemetry-shutdown",
)


def wait_for_telemetry_threads_to_end(timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while alive := [t.name for t in threading.enumerate() if t.name.startswith(TELEMETRY_THREADS)]:
        if time.monotonic() >= deadline:
            raise AssertionError(f"telemetry threads still running after {timeout_s} s: {alive}")
        time.sleep(_POLL_S)
