from __future__ import annotations

import pytest

from frontend.bench.proxy_overhead import main


def test_measures_both_paths_against_real_servers(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--sessions", "2", "--seconds", "1.2", "--slices", "1", "--warmup-frames", "2"]
    assert main(argv) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    row = next(r for r in rows if len(r) == 10 and r[0] == "2")  # the table row, not a header
    direct_p50, proxy_p50 = float(row[1]), float(row[3])
    assert direct_p50 > 0 and proxy_p50 > 0
    assert row[9] == "0/0"  # no echo lost on either path
