"""What /proxy/moshi adds to a conversation's round trip, against a direct connection.

Both paths reach the same backend process (loopback engine, delay 0) in the same run, in
alternating order; the difference of their p50/p99 is the proxy's cost. Target: under 1 ms at p50.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from moshi_backend.bench.roundtrip_clients import Arrival, measure
from moshi_backend.bench.roundtrip_report import load_report, machine_line
from moshi_backend.bench.roundtrip_targets import BenchError, backend_command, served
from moshi_backend.bench.roundtrip_times import RoundTrips, merged
from moshi_backend.testing import ogg_pages, tone
from testsupport.processes import free_port

DIRECT = "direct"
PROXY = "proxy"
TARGET_ADDED_P50_MS = 1.0


def _frontend_command() -> list[str]:
    return [sys.executable, "-m", "frontend"]


def _row(sessions: int, direct: RoundTrips, proxy: RoundTrips) -> str:
    added50, added99 = proxy.p50 - direct.p50, proxy.p99 - direct.p99
    verdict = "PASS" if added50 < TARGET_ADDED_P50_MS else "FAIL"
    return (
        f"{sessions:>8}  {direct.p50:>10.2f}  {direct.p99:>10.2f}  {proxy.p50:>9.2f}  "
        f"{proxy.p99:>9.2f}  {added50:>9.2f}  {added99:>9.2f}  {verdict:>6}  "
        f"{f'{direct.frames}/{proxy.frames}':>13}  "
        f"{f'{direct.frames_lost}/{proxy.frames_lost}':>10}"
    )


async def run(args: argparse.Namespace) -> int:
    at_start = os.getloadavg()
    pages = ogg_pages(tone(args.seconds / args.slices))
    backend_port, frontend_port = free_port(), free_port()
    largest = max(args.sessions)
    frontend_env = {
        "APP_HOST": "127.0.0.1",
        "APP_PORT": str(frontend_port),
        "MOSHI_WS_URL": f"ws://127.0.0.1:{backend_port}/api/chat",
        "MOSHI_PROXY": "true",
    }
    async with (
        served(
            DIRECT, backend_command(backend_port, 2 * largest), backend_port, args.ready_timeout
        ) as direct,
        served(
            PROXY,
            _frontend_command(),
            frontend_port,
            args.ready_timeout,
            env=frontend_env,
            chat_path="/proxy/moshi",
        ) as proxy,
    ):
        targets = {DIRECT: direct, PROXY: proxy}
        for name in (DIRECT, PROXY):  # warm both paths (Opus start-up, imports, pools)
            await measure(targets[name], largest, pages[:12], warmup_frames=0, arrival=args.arrival)
        print(machine_line())
        print(
            f"{args.slices} run(s) of {len(pages)} frames per path and session count, "
            f"arrival {args.arrival.value}"
        )
        header = (
            f"{'sessions':>8}  {'direct p50':>10}  {'direct p99':>10}  {'proxy p50':>9}  "
            f"{'proxy p99':>9}  {'+p50 ms':>9}  {'+p99 ms':>9}  {'target':>6}  "
            f"{'frames d/p':>13}  {'lost d/p':>10}"
        )
        print(header)
        print("-" * len(header))
        for index, sessions in enumerate(args.sessions):
            parts: dict[str, list[RoundTrips]] = {DIRECT: [], PROXY: []}
            for slice_index in range(args.slices):
                order = [DIRECT, PROXY] if (index + slice_index) % 2 == 0 else [PROXY, DIRECT]
                for name in order:
                    parts[name].append(
                        await measure(
                            targets[name],
                            sessions,
                            pages,
                            warmup_frames=args.warmup_frames,
                            arrival=args.arrival,
                        )
                    )
            print(_row(sessions, merged(parts[DIRECT]), merged(parts[PROXY])), flush=True)
    for line in load_report(at_start):
        print(line)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="proxy_overhead", description=__doc__)
    parser.add_argument("--sessions", default="1,10,32", help="comma-separated (default 1,10,32)")
    parser.add_argument("--seconds", type=float, default=10.0, help="audio per session")
    parser.add_argument("--slices", type=int, default=2, help="interleaved runs per path")
    parser.add_argument("--warmup-frames", type=int, default=12, help="frames skipped per run")
    parser.add_argument("--ready-timeout", type=float, default=60.0)
    parser.add_argument(
        "--arrival",
        type=Arrival,
        choices=list(Arrival),
        default=Arrival.SPREAD,
        help="spread (default): pages spread over each 80 ms; burst: all in the same instant",
    )
    args = parser.parse_args(argv)
    args.sessions = [int(part) for part in args.sessions.split(",") if part.strip()]
    try:
        return asyncio.run(run(args))
    except BenchError as error:
        print(f"proxy_overhead: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
