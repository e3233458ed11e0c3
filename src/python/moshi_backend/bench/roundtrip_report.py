"""The round-trip benchmark's printed report: the table, the machine and its load."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass

from moshi_backend.bench.roundtrip_targets import FLOOR, SERVER, TELEMETRY_OFF, TELEMETRY_ON
from moshi_backend.bench.roundtrip_times import RoundTrips

TARGET_RATIO = 1.2


@dataclass(frozen=True)
class Comparison:
    """Which target is measured against which, and the ratio it must stay within."""

    measured: str
    baseline: str
    short: str  # the pair in the narrow columns
    letters: str  # the pair in the order column
    target_ratio: float

    def order_letters(self, order: Sequence[str]) -> str:
        return "".join(self.letters[0 if name == self.measured else 1] for name in order)


FLOOR_COMPARISON = Comparison(SERVER, FLOOR, "srv/flr", "SF", TARGET_RATIO)
# Telemetry on against off: what the issue allows it to cost.
TELEMETRY_COMPARISON = Comparison(TELEMETRY_ON, TELEMETRY_OFF, "on/off", "10", 1.1)


def _ratio(value: float, floor: float) -> float:
    return value / floor if floor > 0 else float("inf")


def _ms(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}"


def verdict(server: RoundTrips, floor: RoundTrips, target_ratio: float = TARGET_RATIO) -> str:
    ok = max(_ratio(server.p50, floor.p50), _ratio(server.p99, floor.p99)) <= target_ratio
    return "PASS" if ok else "FAIL"


def format_table(
    rows: Sequence[tuple[RoundTrips, RoundTrips, str]],
    comparison: Comparison = FLOOR_COMPARISON,
) -> str:
    """One row per session count: the measured target against its baseline."""
    measured, baseline, short = comparison.measured, comparison.baseline, comparison.short
    target_ratio = comparison.target_ratio
    header = (
        f"{'sessions':>8}  {'order':<8}  {measured + ' p50':>10}  {measured + ' p99':>10}  "
        f"{baseline + ' p50':>9}  {baseline + ' p99':>9}  {'p50 x':>6}  {'p99 x':>6}  "
        f"{f'<={target_ratio:g}x':>6}  "
        f"{'frames ' + short:>15}  {'lost ' + short:>12}  {'cpu ms/frame ' + short:>20}"
    )
    lines = [header, "-" * len(header)]
    for server, floor, order in rows:
        lines.append(
            f"{server.sessions:>8}  {order:<8}  {server.p50:>10.2f}  {server.p99:>10.2f}  "
            f"{floor.p50:>9.2f}  {floor.p99:>9.2f}  {_ratio(server.p50, floor.p50):>6.2f}  "
            f"{_ratio(server.p99, floor.p99):>6.2f}  {verdict(server, floor, target_ratio):>6}  "
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


def load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


def load_report(at_start: tuple[float, float, float] | None) -> list[str]:
    def shown(load: tuple[float, float, float] | None) -> str:
        return "unknown" if load is None else "/".join(f"{value:.2f}" for value in load)

    lines = [
        f"load average (1/5/15 min): {shown(at_start)} at start, {shown(load_average())} at end"
    ]
    cores = _usable_cores()
    if at_start is not None and cores and at_start[0] > cores:
        lines.append(
            f"warning: the machine was busy before the run (load {at_start[0]:.1f} on {cores} "
            "cores): the latencies, p99 most of all, include waits for that other work; the cpu "
            "column hardly does"
        )
    return lines
