from __future__ import annotations

import pytest

from moshi_backend.bench import model_step

_TINY = ["--config", "tiny", "--device", "cpu", "--steps", "3", "--warmup", "1"]


def test_the_benchmark_runs_its_code_path_on_the_tiny_shapes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert model_step.main([*_TINY, "--batches", "1,2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("tiny on cpu")
    rows = [line.split() for line in lines[2:4]]
    # Batch, graphs (none on a CPU), weights, steps; peak memory is not measured on a CPU.
    assert [row[:4] for row in rows] == [["1", "off", "none", "3"], ["2", "off", "none", "3"]]
    assert [row[7] for row in rows] == ["n/a", "n/a"]
    assert lines[4].startswith("largest batch with p50 within 80 ms (graphs off): ")


def test_a_column_per_quantization_mode(capsys: pytest.CaptureFixture[str]) -> None:
    assert model_step.main([*_TINY, "--batches", "1", "--quantize", "none,int8,fp8"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines[2:5]]
    assert [row[:4] for row in rows] == [
        ["1", "off", mode, "3"] for mode in ("none", "int8", "fp8")
    ]
    table = lines.index("by MOSHI_QUANTIZE (graphs off): p50 ms per step / peak GiB")
    assert lines[table + 1].split() == [
        "batch", "none", "ms", "none", "GiB", "int8", "ms", "int8", "GiB", "fp8", "ms", "fp8", "GiB"
    ]  # fmt: skip
    cells = lines[table + 2].split()
    assert cells[0] == "1" and cells[2::2] == ["n/a"] * 3
    assert all(float(ms) > 0 for ms in cells[1::2])


def test_a_mode_that_cannot_run_is_refused_before_any_model_is_built(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert model_step.main([*_TINY, "--quantize", "int4"]) == 2
    assert "MOSHI_QUANTIZE=int4: expected one of none, int8, fp8" in capsys.readouterr().err
