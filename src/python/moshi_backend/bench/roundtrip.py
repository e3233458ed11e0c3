"""Round trip the server adds per 80 ms frame, against a bare Opus echo in the same run.

Both the backend (loopback engine, delay 0) and the floor (`floor_server`) run as subprocesses;
this process plays N live microphones against each in turn and times every frame from the send
of its Ogg page to the arrival of its 0x01 echo. Client and servers share the machine's cores,
so the absolute numbers mean little; the server/floor ratio is the result.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from moshi_backend.bench import floor_server
from moshi_backend.testing import ogg_pages, tone
from moshi_protocol.client import ChatClient
from moshi_protocol.messages import FRAME_SAMPLES, FRAME_SECONDS, MessageKind
from testsupport.polling import GaveUp
from testsupport.processes import free_port, service_process

SERVER = "server"
FLOOR = "floor"
TARGET_RATIO = 1.5
_HOST = "127.0.0.1"
# The backend's package, run with `-m`; its __main__ is a declared dependency in BUILD.
_BACKEND_MODULE = "moshi_backend"
# While pages still go out, this long without an echo means the target is stuck; after the
# last page, it is how long the stragglers get before they count as lost.
_STALL_TIMEOUT_S = 5.0
# Between the last handshake and the first page, so that no session starts late.
_START_DELAY_S = 0.2

T = TypeVar("T")


class BenchError(Exception):
    """The benchmark could not measure: a server did not start or a session failed."""


@dataclass(frozen=True)
class Target:
    name: str
    base_url: str
    # The server's process, for its CPU time; None when it is not ours to watch.
    pid: int | None = None
    chat_path: str = "/api/chat"

    @property
    def chat_url(self) -> str:
        return self.base_url.replace("http", "ws", 1) + self.chat_path

    def cpu_seconds(self) -> float | None:
        """CPU time of the server's live threads so far (Linux); None where unknown."""
        if self.pid is None:
            return None
        total_ns = 0
        try:
            for task in Path(f"/proc/{self.pid}/task").iterdir():
                try:
                    total_ns += int((task / "schedstat").read_text().split()[0])
                except FileNotFoundError:
                    continue  # a thread that ended while being read
        except (OSError, ValueError, IndexError):
            return None
        return total_ns / 1e9


@dataclass(frozen=True)
class SessionTimes:
    """Monotonic send time of each page and arrival time of each 0x01 echo, in order."""

    sent: tuple[float, ...]
    received: tuple[float, ...]

    @property
    def lost(self) -> int:
        return len(self.sent) - len(self.received)


@dataclass(frozen=True)
class RoundTrips:
    target: str
    sessions: int
    frames_sent: int
    frames_lost: int
    latencies_ms: tuple[float, ...]
    # What the server spent on the run, handshakes and closes included: unlike the latencies,
    # other work on the machine hardly changes it.
    cpu_seconds: float | None = None

    @property
    def cpu_ms_per_frame(self) -> float | None:
        if self.cpu_seconds is None or not self.frames_sent:
            return None
        return self.cpu_seconds * 1000.0 / self.frames_sent

    @property
    def frames(self) -> int:
        """Frames timed: every echo after the warm-up ones."""
        return len(self.latencies_ms)

    def percentile(self, q: float) -> float:
        return float(np.percentile(np.asarray(self.latencies_ms), q))

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def p99(self) -> float:
        return self.percentile(99)


def merged(parts: Sequence[RoundTrips]) -> RoundTrips:
    """The slices of one target at one session count, as one sample."""
    return RoundTrips(
        target=parts[0].target,
        sessions=parts[0].sessions,
        frames_sent=sum(part.frames_sent for part in parts),
        frames_lost=sum(part.frames_lost for part in parts),
        latencies_ms=tuple(value for part in parts for value in part.latencies_ms),
        cpu_seconds=(
            None
            if any(part.cpu_seconds is None for part in parts)
            else sum(part.cpu_seconds or 0.0 for part in parts)
        ),
    )


def round_trips(target: str, times: Sequence[SessionTimes], warmup_frames: int) -> RoundTrips:
    # Echoes come back in page order, one per page, so the n-th echo answers the n-th page. A
    # lost echo would shift that pairing; the table reports losses so such a row is not trusted.
    # Not strict: the echoes of the last pages may never have come.
    pairs = (zip(session.sent, session.received, strict=False) for session in times)
    latencies = [
        (received - sent) * 1000.0
        for session_pairs in pairs
        for sent, received in islice(session_pairs, warmup_frames, None)
    ]
    return RoundTrips(
        target=target,
        sessions=len(times),
        frames_sent=sum(len(session.sent) for session in times),
        frames_lost=sum(session.lost for session in times),
        latencies_ms=tuple(latencies),
    )


# ---------------------------------------------------------------------------------------------
# The servers, as subprocesses


def backend_command(port: int, max_sessions: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        _BACKEND_MODULE,
        "--engine",
        "loopback",
        "--host",
        _HOST,
        "--port",
        str(port),
        "--max-sessions",
        str(max_sessions),
        "--loopback-delay-ms",
        "0",
    ]


def floor_command(port: int) -> list[str]:
    return [sys.executable, "-m", floor_server.__name__, "--host", _HOST, "--port", str(port)]


@asynccontextmanager
async def served(
    name: str,
    command: Sequence[str],
    port: int,
    ready_timeout_s: float,
    *,
    env: Mapping[str, str] | None = None,
    chat_path: str = "/api/chat",
) -> AsyncIterator[Target]:
    """A server of the bench as a process, ready; its process group is stopped on the way out."""
    base_url = f"http://{_HOST}:{port}"
    with service_process(command, env) as server:
        try:
            await asyncio.to_thread(
                server.wait_http, base_url + "/health", timeout_s=ready_timeout_s
            )
        except GaveUp as error:
            raise BenchError(f"{name}: {error}") from None
        yield Target(name, base_url, server.process.pid, chat_path)


@asynccontextmanager
async def running_targets(
    max_sessions: int, ready_timeout_s: float = 60.0
) -> AsyncIterator[dict[str, Target]]:
    """The backend and the floor on free ports, ready; both terminated on the way out."""
    backend_port, floor_port = free_port(_HOST), free_port(_HOST)
    # Headroom: a slot frees only once the last run's close handshake is through.
    backend = backend_command(backend_port, 2 * max_sessions)
    async with (
        served(SERVER, backend, backend_port, ready_timeout_s) as server,
        served(FLOOR, floor_command(floor_port), floor_port, ready_timeout_s) as floor,
    ):
        yield {SERVER: server, FLOOR: floor}


# ---------------------------------------------------------------------------------------------
# The clients


async def _send_paced(
    client: ChatClient, pages: Sequence[bytes], start_at: float, sent: list[float]
) -> None:
    # Each page is due at start + n * 80 ms on the monotonic clock, so a late wake-up delays
    # one page but not the ones after it.
    for index, page in enumerate(pages):
        delay = start_at + index * FRAME_SECONDS - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        sent.append(time.monotonic())
        await client.send_audio(page)


async def _receive_echoes(
    client: ChatClient, expected: int, received: list[float], sender: asyncio.Task[None]
) -> None:
    while len(received) < expected:
        try:
            message = await client.receive(timeout_s=_STALL_TIMEOUT_S)
        except TimeoutError:
            if sender.done():
                return  # the rest are lost; the caller counts them
            raise BenchError(f"no echo for {_STALL_TIMEOUT_S:.0f} s while sending") from None
        if message.kind is MessageKind.AUDIO:
            received.append(time.monotonic())
        elif message.kind is MessageKind.ERROR:
            raise BenchError(f"server error: {message.text}")


async def _converse(client: ChatClient, pages: Sequence[bytes], start_at: float) -> SessionTimes:
    sent: list[float] = []
    received: list[float] = []
    sender = asyncio.create_task(_send_paced(client, pages, start_at, sent))
    try:
        await _receive_echoes(client, len(pages), received, sender)
        await sender  # done already unless echoes outran the pages; re-raises its failure
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
    return SessionTimes(tuple(sent), tuple(received))


async def _open(stack: AsyncExitStack, url: str) -> ChatClient:
    client = await stack.enter_async_context(ChatClient.connect(url))
    await client.handshake()
    return client


async def _all(coroutines: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
    """Every result, or an ExceptionGroup with the rest cancelled at the first failure."""
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(coroutine) for coroutine in coroutines]
    return [task.result() for task in tasks]


async def measure(
    target: Target,
    sessions: int,
    pages: Sequence[bytes],
    *,
    warmup_frames: int,
    connect_timeout_s: float = 30.0,
) -> RoundTrips:
    """N concurrent conversations, each streaming `pages` in real time; their round trips."""
    cpu_before = target.cpu_seconds()
    async with AsyncExitStack() as stack:
        try:
            async with asyncio.timeout(connect_timeout_s):
                clients = await _all([_open(stack, target.chat_url) for _ in range(sessions)])
            start = time.monotonic() + _START_DELAY_S
            # Independent users speak out of phase; spreading the sessions over the frame
            # avoids measuring a burst of N pages that land in the same millisecond.
            starts = [start + FRAME_SECONDS * index / sessions for index in range(sessions)]
            times = await _all(
                [_converse(c, pages, at) for c, at in zip(clients, starts, strict=True)]
            )
        except TimeoutError:
            raise BenchError(
                f"{target.name}: {sessions} session(s) not open after {connect_timeout_s:.0f} s"
            ) from None
        except ExceptionGroup as failures:
            first = failures.exceptions[0]
            raise BenchError(f"{target.name}: a session failed: {first!r}") from first
    cpu_after = target.cpu_seconds()
    result = round_trips(target.name, times, warmup_frames)
    if cpu_before is None or cpu_after is None or cpu_after < cpu_before:
        return result
    return replace(result, cpu_seconds=cpu_after - cpu_before)


# ---------------------------------------------------------------------------------------------
# The report


def _ratio(value: float, floor: float) -> float:
    return value / floor if floor > 0 else float("inf")


def _ms(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}"


def verdict(server: RoundTrips, floor: RoundTrips) -> str:
    ok = max(_ratio(server.p50, floor.p50), _ratio(server.p99, floor.p99)) <= TARGET_RATIO
    return "PASS" if ok else "FAIL"


def format_table(rows: Sequence[tuple[RoundTrips, RoundTrips, str]]) -> str:
    header = (
        f"{'sessions':>8}  {'order':<8}  {'server p50':>10}  {'server p99':>10}  "
        f"{'floor p50':>9}  {'floor p99':>9}  {'p50 x':>6}  {'p99 x':>6}  {'target':>6}  "
        f"{'frames srv/flr':>15}  {'lost srv/flr':>12}  {'cpu ms/frame srv/flr':>20}"
    )
    lines = [header, "-" * len(header)]
    for server, floor, order in rows:
        lines.append(
            f"{server.sessions:>8}  {order:<8}  {server.p50:>10.2f}  {server.p99:>10.2f}  "
            f"{floor.p50:>9.2f}  {floor.p99:>9.2f}  {_ratio(server.p50, floor.p50):>6.2f}  "
            f"{_ratio(server.p99, floor.p99):>6.2f}  {verdict(server, floor):>6}  "
            f"{f'{server.frames}/{floor.frames}':>15}  "
            f"{f'{server.frames_lost}/{floor.frames_lost}':>12}  "
            f"{f'{_ms(server.cpu_ms_per_frame)}/{_ms(floor.cpu_ms_per_frame)}':>20}"
        )
    return "\n".join(lines)


def _usable_cores() -> int | None:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def machine_line() -> str:
    usable = _usable_cores()
    cores = f"{os.cpu_count()} CPU cores" + (f" ({usable} usable)" if usable else "")
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"{cores}, {python}, {platform.machine()} {platform.system()}"


# ---------------------------------------------------------------------------------------------
# The command


def run_order(index: int, slices: int) -> list[str]:
    """Targets in A B B A order, flipped at every other session count.

    Each target gets early and late slots, so a load that drifts during the run (other work on
    the machine, the client's own heap growing) weighs on both alike.
    """
    order: list[str] = []
    for slice_index in range(slices):
        first_is_server = (index + slice_index) % 2 == 0
        order += [SERVER, FLOOR] if first_is_server else [FLOOR, SERVER]
    return order


def _load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


def load_report(at_start: tuple[float, float, float] | None) -> list[str]:
    def shown(load: tuple[float, float, float] | None) -> str:
        return "unknown" if load is None else "/".join(f"{value:.2f}" for value in load)

    lines = [
        f"load average (1/5/15 min): {shown(at_start)} at start, {shown(_load_average())} at end"
    ]
    cores = _usable_cores()
    if at_start is not None and cores and at_start[0] > cores:
        lines.append(
            f"warning: the machine was busy before the run (load {at_start[0]:.1f} on {cores} "
            "cores): the latencies, p99 most of all, include waits for that other work; the cpu "
            "column hardly does"
        )
    return lines


def _session_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of integers: {text}"
        ) from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("session counts must be positive integers")
    return counts


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="roundtrip",
        description=(
            "Round trip per 80 ms frame: moshi_backend (loopback engine, delay 0) against a bare "
            f"aiohttp Opus echo. Target: p50 and p99 within {TARGET_RATIO}x of the echo. Exits "
            "0 whatever the verdict, 1 when it cannot measure."
        ),
    )
    add = parser.add_argument
    add("--sessions", type=_session_counts, default=[1, 10, 50], help="default 1,10,50")
    add("--seconds", type=float, default=10.0, help="audio per session (default 10)")
    add(
        "--slices",
        type=int,
        default=2,
        help="each target's audio is split into this many runs, interleaved (default 2)",
    )
    # An Opus stream's first 6 frames cost about 4x a later one to encode: N sessions that start
    # together make a burst that is about starting, not about the per-frame cost.
    add("--warmup-frames", type=int, default=12, help="frames skipped per run (default 12)")
    add(
        "--warmup-seconds",
        type=float,
        default=1.0,
        help="an unmeasured run of each target at the largest count first (default 1)",
    )
    add("--ready-timeout", type=float, default=60.0, help="seconds for a server to start")
    return parser


def _pages(seconds: float) -> list[bytes]:
    pcm = tone(seconds)
    return ogg_pages(pcm[: pcm.size - pcm.size % FRAME_SAMPLES])


async def run(args: argparse.Namespace) -> int:
    if args.slices < 1 or args.warmup_frames < 0:
        raise BenchError("--slices must be at least 1 and --warmup-frames at least 0")
    pages = _pages(args.seconds / args.slices)
    if len(pages) <= args.warmup_frames:
        raise BenchError(f"{len(pages)} frames per run: nothing left after the warm-up frames")
    print(machine_line())
    print(
        f"per target and session count: {args.slices} run(s) of {len(pages)} frames, first "
        f"{args.warmup_frames} of each skipped; round trip = 0x01 echo received - Ogg page sent",
        flush=True,
    )
    load_at_start = _load_average()
    rows: list[tuple[RoundTrips, RoundTrips, str]] = []
    async with running_targets(max(args.sessions), args.ready_timeout) as targets:
        warmup_pages = _pages(args.warmup_seconds)
        if warmup_pages:
            # First use costs once per process (worker threads, allocator growth, lazy imports);
            # it is not a per-frame cost, so neither target pays it inside the measurement.
            for name in (SERVER, FLOOR):
                await measure(targets[name], max(args.sessions), warmup_pages, warmup_frames=0)
        for index, sessions in enumerate(args.sessions):
            order = run_order(index, args.slices)
            parts: dict[str, list[RoundTrips]] = {SERVER: [], FLOOR: []}
            for name in order:
                part = await measure(
                    targets[name], sessions, pages, warmup_frames=args.warmup_frames
                )
                parts[name].append(part)
                # Progress on stderr: the table on stdout comes only at the end.
                print(
                    f"  {name:<6} {sessions:>3} session(s): p50 {part.p50:.2f} ms, "
                    f"p99 {part.p99:.2f} ms, {part.frames_lost} lost",
                    file=sys.stderr,
                    flush=True,
                )
            letters = "".join(name[0].upper() for name in order)
            rows.append((merged(parts[SERVER]), merged(parts[FLOOR]), letters))
    print(format_table(rows))
    for line in load_report(load_at_start):
        print(line)
    if any(server.frames_lost or floor.frames_lost for server, floor, _ in rows):
        print("note: lost echoes shift the page/echo pairing; those rows overstate round trips")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(run(args))
    except BenchError as error:
        print(f"roundtrip: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
