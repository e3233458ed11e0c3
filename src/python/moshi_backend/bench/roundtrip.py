"""Round trip the server adds per 80 ms frame, against a bare Opus echo in the same run.

Both the backend (loopback engine, delay 0) and the floor (`floor_server`) run as subprocesses;
this process plays N live microphones against each in turn and times every frame from the send
of its Ogg page to the arrival of its 0x01 echo. Client and servers share the machine's cores,
so the absolute numbers mean little; the server/floor ratio is the result.

With --telemetry the two targets are the backend with telemetry on (traces, metrics and logs
exported to a collector in this process that answers and forgets) and the same backend with
telemetry off: the ratio is what telemetry costs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from moshi_backend.bench.roundtrip_clients import Arrival, measure
from moshi_backend.bench.roundtrip_report import (
    FLOOR_COMPARISON,
    TARGET_RATIO,
    TELEMETRY_COMPARISON,
    format_table,
    load_average,
    load_report,
    machine_line,
)
from moshi_backend.bench.roundtrip_targets import (
    FLOOR,
    SERVER,
    BenchError,
    running_targets,
    telemetry_targets,
)
from moshi_backend.bench.roundtrip_times import RoundTrips, merged
from moshi_backend.testing import ogg_pages, tone
from moshi_protocol.messages import FRAME_SAMPLES


def run_order(index: int, slices: int, pair: tuple[str, str] = (SERVER, FLOOR)) -> list[str]:
    """Targets in A B B A order, flipped at every other session count.

    Each target gets early and late slots, so a load that drifts during the run (other work on
    the machine, the client's own heap growing) weighs on both alike.
    """
    order: list[str] = []
    for slice_index in range(slices):
        first_is_measured = (index + slice_index) % 2 == 0
        order += list(pair) if first_is_measured else list(reversed(pair))
    return order


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
    add("--sessions", type=_session_counts, default=[1, 10, 32, 64], help="default 1,10,32,64")
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
    add(
        "--arrival",
        type=Arrival,
        choices=list(Arrival),
        default=Arrival.SPREAD,
        help=(
            "spread: the sessions' pages leave evenly over each 80 ms (independent speakers; "
            "default); burst: all in the same instant (the worst case)"
        ),
    )
    add(
        "--telemetry",
        action="store_true",
        help=(
            "compare the backend with telemetry on (to a collector in this process) against "
            f"the backend with it off, target {TELEMETRY_COMPARISON.target_ratio}x, instead of "
            "the backend against the floor"
        ),
    )
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
        f"{args.warmup_frames} of each skipped, arrival {args.arrival.value}; "
        "round trip = 0x01 echo received - Ogg page sent",
        flush=True,
    )
    load_at_start = load_average()
    rows: list[tuple[RoundTrips, RoundTrips, str]] = []
    comparison = TELEMETRY_COMPARISON if args.telemetry else FLOOR_COMPARISON
    pair = (comparison.measured, comparison.baseline)
    targets_of = telemetry_targets if args.telemetry else running_targets
    async with targets_of(max(args.sessions), args.ready_timeout) as targets:
        warmup_pages = _pages(args.warmup_seconds)
        if warmup_pages:
            # First use costs once per process (worker threads, allocator growth, lazy imports);
            # it is not a per-frame cost, so neither target pays it inside the measurement.
            for name in pair:
                await measure(
                    targets[name],
                    max(args.sessions),
                    warmup_pages,
                    warmup_frames=0,
                    arrival=args.arrival,
                )
        for index, sessions in enumerate(args.sessions):
            order = run_order(index, args.slices, pair)
            parts: dict[str, list[RoundTrips]] = {name: [] for name in pair}
            for name in order:
                part = await measure(
                    targets[name],
                    sessions,
                    pages,
                    warmup_frames=args.warmup_frames,
                    arrival=args.arrival,
                )
                parts[name].append(part)
                # Progress on stderr: the table on stdout comes only at the end.
                print(
                    f"  {name:<6} {sessions:>3} session(s): p50 {part.p50:.2f} ms, "
                    f"p99 {part.p99:.2f} ms, {part.frames_lost} lost",
                    file=sys.stderr,
                    flush=True,
                )
            letters = comparison.order_letters(order)
            rows.append((merged(parts[pair[0]]), merged(parts[pair[1]]), letters))
    print(format_table(rows, comparison))
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
