"""Soak: N loopback conversations through the frontend's relay for a long time, then the slopes.

Every round (a minute by default) N clients open conversations through `/proxy/moshi`, stream a
round of audio in real time and hang up; after each round the resident memory of both services
is sampled. At the end it prints, per service, the memory at the start and the end and the
least-squares slope in MiB per hour over the rounds after the first (imports and pools settle
in the first), and for the whole run the frames sent, lost and the rounds that failed. A leak
shows as a slope that does not go to zero when the run gets longer.

    ./pants run src/python/frontend/bench/soak.py -- --sessions 10 --minutes 30
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import psutil

from moshi_backend.bench.roundtrip_clients import measure
from moshi_backend.bench.roundtrip_report import machine_line
from moshi_backend.bench.roundtrip_targets import BenchError, backend_command, served
from moshi_backend.testing import ogg_pages, tone
from testsupport.processes import free_port

MIB = 1024 * 1024


@dataclass
class Samples:
    """One service's resident memory after each round."""

    name: str
    pid: int
    rss_mib: list[float] = field(default_factory=list)
    at_s: list[float] = field(default_factory=list)

    def sample(self, elapsed_s: float) -> None:
        self.rss_mib.append(psutil.Process(self.pid).memory_info().rss / MIB)
        self.at_s.append(elapsed_s)

    def slope_mib_per_hour(self) -> float | None:
        """Over the rounds after the first; None with fewer than three of them."""
        if len(self.rss_mib) < 4:
            return None
        hours = np.asarray(self.at_s[1:]) / 3600
        slope, _ = np.polyfit(hours, np.asarray(self.rss_mib[1:]), 1)
        return float(slope)

    def row(self) -> str:
        slope = self.slope_mib_per_hour()
        shown = "n/a (too few rounds)" if slope is None else f"{slope:+.1f} MiB/h"
        return (
            f"{self.name:<9} rss start {self.rss_mib[0]:7.1f} MiB  end {self.rss_mib[-1]:7.1f} MiB"
            f"  max {max(self.rss_mib):7.1f} MiB  slope {shown}"
        )


def _frontend_env(frontend_port: int, backend_port: int) -> dict[str, str]:
    return {
        "APP_HOST": "127.0.0.1",
        "APP_PORT": str(frontend_port),
        "MOSHI_WS_URL": f"ws://127.0.0.1:{backend_port}/api/chat",
        "MOSHI_PROXY": "true",
    }


async def run(args: argparse.Namespace) -> int:
    backend_port, frontend_port = free_port(), free_port()
    pages = ogg_pages(tone(args.round_seconds))
    async with (
        served(
            "backend",
            backend_command(backend_port, args.sessions),
            backend_port,
            args.ready_timeout,
        ) as backend,
        served(
            "relay",
            [sys.executable, "-m", "frontend"],
            frontend_port,
            args.ready_timeout,
            env=_frontend_env(frontend_port, backend_port),
            chat_path="/proxy/moshi",
        ) as relay,
    ):
        assert backend.pid is not None and relay.pid is not None
        services = [Samples("backend", backend.pid), Samples("frontend", relay.pid)]
        print(machine_line())
        print(
            f"{args.sessions} conversations through /proxy/moshi, rounds of "
            f"{args.round_seconds:g} s for {args.minutes:g} min"
        )
        started = time.monotonic()
        sent = lost = failed = rounds = 0
        while time.monotonic() - started < args.minutes * 60:
            try:
                result = await measure(relay, args.sessions, pages, warmup_frames=0)
            except BenchError as error:
                failed += 1
                print(f"round {rounds + 1}: FAILED: {error}", flush=True)
            else:
                sent += result.frames_sent
                lost += result.frames_lost
            rounds += 1
            elapsed = time.monotonic() - started
            for service in services:
                service.sample(elapsed)
            print(
                f"round {rounds:3d} at {elapsed / 60:5.1f} min: backend "
                f"{services[0].rss_mib[-1]:.1f} MiB, frontend {services[1].rss_mib[-1]:.1f} MiB,"
                f" frames lost so far {lost}/{sent}",
                flush=True,
            )
        print()
        for service in services:
            print(service.row())
        print(f"frames sent {sent}, lost {lost}; rounds {rounds}, failed {failed}")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--round-seconds", type=float, default=60.0)
    parser.add_argument("--ready-timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    try:
        return asyncio.run(run(args))
    except BenchError as error:
        print(f"soak: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
