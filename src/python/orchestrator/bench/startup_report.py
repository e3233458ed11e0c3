"""What the startup bench measured, as it goes and as the final table."""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field

COLD, WARM, HOT, LOCAL, RELOAD = "cold", "warm", "hot", "local", "reload"
SCENARIOS = (COLD, HOT, WARM, LOCAL, RELOAD)
GOALS_S = {HOT: 3.0, RELOAD: 2.0}


@dataclass
class Sample:
    seconds: float  # spawn (or edit) until both /health answer 200, seen from the bench
    reported_s: float | None = None  # the orchestrator's own "stack is up in N s"


@dataclass
class Results:
    samples: dict[str, list[Sample]] = field(default_factory=dict)

    def add(self, scenario: str, sample: Sample) -> None:
        self.samples.setdefault(scenario, []).append(sample)
        reported = f" (orchestrator: {sample.reported_s:.1f} s)" if sample.reported_s else ""
        print(f"  {scenario:<6} {sample.seconds:6.2f} s{reported}  [{load_line()}]", flush=True)


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def machine_line() -> str:
    return f"{os.cpu_count()} cores, {load_line()}"


def table(results: Results) -> str:
    header = ("scenario", "runs", "min s", "median s", "orch. median s", "goal", "result")
    rows: list[tuple[str, ...]] = [header]
    for scenario in SCENARIOS:
        samples = results.samples.get(scenario)
        if not samples:
            continue
        seconds = [s.seconds for s in samples]
        reported = [s.reported_s for s in samples if s.reported_s is not None]
        median = statistics.median(seconds)
        goal = GOALS_S.get(scenario)
        rows.append(
            (
                scenario,
                str(len(samples)),
                f"{min(seconds):.2f}",
                f"{median:.2f}",
                f"{statistics.median(reported):.1f}" if reported else "-",
                f"<= {goal:.0f} s" if goal else "-",
                ("PASS" if median <= goal else "FAIL") if goal else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )
