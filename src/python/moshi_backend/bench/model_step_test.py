from __future__ import annotations

import pytest

from moshi_backend.bench import model_step


def test_the_benchmark_runs_its_code_path_on_the_tiny_shapes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert (
        model_step.main(["--config", "tiny", "--device", "cpu", "--steps", "3", "--warmup", "1"])
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("tiny on cpu")
    rows = [line.split() for line in lines[2:]]
    assert [row[0] for row in rows] == ["on", "off"] and all(row[1] == "3" for row in rows)
