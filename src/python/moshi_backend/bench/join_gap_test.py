from __future__ import annotations

import pytest

from moshi_backend.bench import join_gap


def test_the_benchmark_runs_on_the_tiny_checkpoint(capsys: pytest.CaptureFixture[str]) -> None:
    assert join_gap.main(["--tiny", "--baseline-s", "0.5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("on cpu, 4 slots, voice TINYF0.wav")
    periods = [line.split(" ", 2)[2] for line in lines[1:4]]
    assert [period.split("  ")[0].strip() for period in periods] == [
        "alone",
        "while 3 join",
        "4 talking",
    ]
    assert [line.split(":")[0] for line in lines[4:7]] == ["joiner 1", "joiner 2", "joiner 3"]
    assert lines[7].startswith("model steps: ")
