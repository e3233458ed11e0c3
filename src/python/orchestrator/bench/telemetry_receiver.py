"""Telemetry receiver benchmark.

(a) The receiver's cost per span: CPU time (all threads of this process) to decode batches of 512
    spans and store them, secrets masked and the SQLite history included (the store is closed,
    so flushed, inside the measurement).
(b) The event hub's latency for log lines (publish to subscriber delivery, p50/p99/max) while the
    receiver runs in the same event loop, idle and then under a burst of 1,000 spans/s POSTed by
    another process (10 requests of 100 spans a second, as the services' exporters would).

    ./pants --concurrent run src/python/orchestrator/bench/telemetry_receiver.py
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.bench.startup_report import machine_line
from orchestrator.events import Event, LogLine
from orchestrator.hub import EventHub, StackState
from orchestrator.masking import Masker
from orchestrator.telemetry.decoding import Signal, decode
from orchestrator.telemetry.receiver import OtlpReceiver
from orchestrator.telemetry.store import StoreLimits, TelemetryStore
from orchestrator.telemetry.testing import spans_body

# As in `up`, which masks the secrets it knows in everything it keeps.
_MASK = Masker(["hf_a_token_of_the_usual_length_0123456789"])
# Another process, so that the sender's CPU and GIL are not the loop's (the services are
# processes of their own too). Prints "accepted refused".
_SENDER = r"""
import http.client, sys, time
host, port, path, rate, seconds = sys.argv[1:6]
rate, seconds = float(rate), float(seconds)
body = open(path, "rb").read()
connection = http.client.HTTPConnection(host, int(port), timeout=10)
accepted = refused = 0
next_at = time.monotonic()
end = next_at + seconds
while time.monotonic() < end:
    connection.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
    response = connection.getresponse()
    response.read()
    if response.status == 200:
        accepted += 1
    else:
        refused += 1
    next_at += 1.0 / rate
    time.sleep(max(0.0, next_at - time.monotonic()))
print(accepted, refused)
"""


def span_costs_us(batches: int, batch_size: int = 512) -> tuple[float, float]:
    """CPU µs per span to decode, and to decode and store (memory and SQLite)."""
    bodies = [spans_body(batch_size) for _ in range(batches)]
    started = time.process_time()
    for body in bodies:
        decode(Signal.TRACES, body)
    decoding = (time.process_time() - started) / (batches * batch_size) * 1e6
    with tempfile.TemporaryDirectory(prefix="telemetry-bench-") as directory:
        store = TelemetryStore(Path(directory), StoreLimits(run_entries=10**9), mask=_MASK)
        store.open(new_run=True)
        started = time.process_time()
        for body in bodies:
            store.add(decode(Signal.TRACES, body))
        store.close(timeout_s=120)
        spent = time.process_time() - started
        if store.dropped:
            raise RuntimeError(f"the store dropped {store.dropped} spans")
    return decoding, spent / (batches * batch_size) * 1e6


class _Latencies:
    """A hub subscriber that notes how long each bench line took to arrive."""

    def __init__(self) -> None:
        self.sent: dict[str, float] = {}
        self.seconds: list[float] = []

    def on_event(self, event: Event, state: StackState) -> None:
        if isinstance(event, LogLine) and event.text in self.sent:
            self.seconds.append(time.perf_counter() - self.sent.pop(event.text))


@dataclass
class HubResult:
    scenario: str
    latencies_ms: list[float]
    spans: int
    refused: int
    cpu_s: float

    def row(self) -> tuple[str, ...]:
        ordered = sorted(self.latencies_ms)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return (
            self.scenario,
            str(len(ordered)),
            f"{statistics.median(ordered):.3f}",
            f"{p99:.3f}",
            f"{ordered[-1]:.3f}",
            str(self.spans),
            str(self.refused),
            f"{self.cpu_s:.2f}",
        )


async def _publish_lines(hub: EventHub, latencies: _Latencies, seconds: float, rate: int) -> None:
    end = time.perf_counter() + seconds
    index = 0
    while time.perf_counter() < end:
        text = f"bench line {index}"
        latencies.sent[text] = time.perf_counter()
        await hub.publish(LogLine("bench", text))
        index += 1
        await asyncio.sleep(1.0 / rate)


async def hub_latency(seconds: float, line_rate: int, burst: bool, directory: Path) -> HubResult:
    hub = EventHub()
    latencies = _Latencies()
    hub.subscribe(latencies)
    hub_task = asyncio.create_task(hub.run())
    store = TelemetryStore(directory, StoreLimits(run_entries=10**9), mask=_MASK)
    await asyncio.to_thread(store.open, new_run=True)
    receiver = OtlpReceiver(store.add)
    port = await receiver.start("127.0.0.1", 0)
    body_path = directory / f"spans-{time.monotonic_ns()}.bin"
    body_path.write_bytes(spans_body(100))
    sender = None
    try:
        started = time.process_time()
        if burst:
            command = [sys.executable, "-c", _SENDER, "127.0.0.1", str(port), str(body_path)]
            sender = subprocess.Popen(
                [*command, "10", str(seconds)], stdout=subprocess.PIPE, text=True
            )
        await _publish_lines(hub, latencies, seconds, line_rate)
        refused = 0
        if sender is not None:
            out, _ = await asyncio.to_thread(sender.communicate, timeout=seconds + 30)
            refused = int(out.split()[1])
        await hub.drain()
        cpu = time.process_time() - started
    finally:
        if sender is not None and sender.poll() is None:
            sender.kill()
            sender.wait(timeout=10)
        await receiver.stop()
        await asyncio.to_thread(store.close)
        hub_task.cancel()
    return HubResult(
        "with 1,000 spans/s" if burst else "receiver idle",
        [s * 1000 for s in latencies.seconds],
        store.received["spans"],
        refused,
        cpu,
    )


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--batches", type=int, default=100, help="of 512 spans (default 100)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per hub scenario")
    parser.add_argument("--line-rate", type=int, default=200, help="log lines a second")
    args = parser.parse_args(argv)
    print(f"machine: {machine_line()}", flush=True)
    decoding, storing = span_costs_us(args.batches)
    spans = str(args.batches * 512)
    print()
    print(
        _table(
            [
                ("receiver cost (512-span batches)", "spans", "CPU µs/span"),
                ("decode", spans, f"{decoding:.1f}"),
                ("decode + store (memory, SQLite)", spans, f"{storing:.1f}"),
            ]
        )
    )
    with tempfile.TemporaryDirectory(prefix="telemetry-bench-") as directory:
        results = [
            asyncio.run(hub_latency(args.seconds, args.line_rate, burst, Path(directory) / name))
            for name, burst in (("idle", False), ("burst", True))
        ]
    header = ("hub latency", "lines", "p50 ms", "p99 ms", "max ms", "spans", "refused", "CPU s")
    print()
    print(_table([header, *(result.row() for result in results)]))
    idle, burst = results
    if burst.spans:
        extra = (burst.cpu_s - idle.cpu_s) / burst.spans * 1e6
        print(f"\nreceiver over HTTP (the burst's extra CPU per span): {extra:.1f} µs/span")
    print(f"machine: {machine_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
