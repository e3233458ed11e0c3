from __future__ import annotations

import pytest

from moshi_backend.bench import model_step


def test_the_benchmark_runs_its_code_path_on_the_tiny_shapes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--config", "tiny", "--device", "cpu", "--steps", "3", "--warmup", "1"]
    assert model_step.main([*argv, "--batches", "1,2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("tiny on cpu")
    rows = [line.split() for line in lines[2:4]]
    # Batch, graphs (none on a CPU), steps.
    assert [row[:3] for row in rows] == [["1", "off", "3"], ["2", "off", "3"]]
    assert lines[4].startswith("largest batch with p50 within 80 ms (graphs off): ")
