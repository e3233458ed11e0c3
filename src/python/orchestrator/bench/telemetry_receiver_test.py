"""The telemetry bench, run small: its tables come out with numbers in them."""

from __future__ import annotations

import pytest

from orchestrator.bench.telemetry_receiver import main


def test_a_short_run_prints_both_tables(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--batches", "4", "--seconds", "1", "--line-rate", "100"]) == 0
    lines = capsys.readouterr().out.splitlines()
    store = next(line for line in lines if line.startswith("decode + store"))
    assert float(store.split()[-1]) > 0
    burst = next(line for line in lines if line.startswith("with 1,000 spans/s"))
    columns = burst.split()
    # Lines were delivered, spans received (10 requests of 100 a second), none refused.
    assert int(columns[3]) > 0 and int(columns[7]) >= 100 and columns[8] == "0", burst
