from __future__ import annotations

import time
from pathlib import Path

from orchestrator.nvidia_gpus import list_nvidia_gpus


def _script(path: Path, body: str) -> str:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def _no_driver(tmp_path: Path) -> Path:
    proc = tmp_path / "proc"
    proc.mkdir()
    return proc


def test_the_drivers_gpu_directories_are_the_gpus(tmp_path: Path) -> None:
    gpus = tmp_path / "proc" / "driver" / "nvidia" / "gpus"
    for address in ("0000:c1:00.0", "0000:01:00.0"):
        (gpus / address).mkdir(parents=True)
    never = _script(tmp_path / "smi", "exit 1")
    found = list_nvidia_gpus(tmp_path / "proc", never)
    assert found == ["GPU at 0000:01:00.0", "GPU at 0000:c1:00.0"]


def test_without_the_driver_nvidia_smi_lists_them(tmp_path: Path) -> None:
    smi = _script(
        tmp_path / "smi",
        'echo "GPU 0: NVIDIA H200 (UUID: GPU-1)"; echo "  MIG 1g.18gb Device 0: (UUID: MIG-2)"',
    )
    assert list_nvidia_gpus(_no_driver(tmp_path), smi) == ["GPU 0: NVIDIA H200 (UUID: GPU-1)"]


def test_no_driver_and_no_nvidia_smi_is_no_gpu(tmp_path: Path) -> None:
    assert list_nvidia_gpus(_no_driver(tmp_path), str(tmp_path / "absent")) == []


def test_a_failing_nvidia_smi_is_no_gpu(tmp_path: Path) -> None:
    smi = _script(tmp_path / "smi", 'echo "GPU 0: stale"; echo "driver mismatch" >&2; exit 9')
    assert list_nvidia_gpus(_no_driver(tmp_path), smi) == []


def test_a_hanging_nvidia_smi_is_no_gpu_after_its_timeout(tmp_path: Path) -> None:
    smi = _script(tmp_path / "smi", "exec sleep 60")
    started = time.monotonic()
    assert list_nvidia_gpus(_no_driver(tmp_path), smi, smi_timeout_s=0.5) == []
    assert time.monotonic() - started < 10
