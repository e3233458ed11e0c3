"""Whether this machine has an NVIDIA GPU, asked without torch (the orchestrator has none): the
kernel driver's own list first, then `nvidia-smi -L` (macOS, containers without /proc's)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

_SMI_TIMEOUT_S = 10.0


def _driver_gpus(proc: Path) -> list[str]:
    # One directory per GPU, named by its PCI address, while the kernel module is loaded.
    gpus = proc / "driver" / "nvidia" / "gpus"
    try:
        return sorted(f"GPU at {entry.name}" for entry in gpus.iterdir())
    except OSError:
        return []


def _smi_gpus(smi: str, timeout_s: float) -> list[str]:
    try:
        listed = subprocess.run(
            [smi, "-L"], capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if listed.returncode != 0:
        return []
    return [line.strip() for line in listed.stdout.splitlines() if line.startswith("GPU ")]


def list_nvidia_gpus(
    proc: Path = Path("/proc"), smi: str = "nvidia-smi", smi_timeout_s: float = _SMI_TIMEOUT_S
) -> list[str]:
    """A line per NVIDIA GPU ("GPU 0: NVIDIA H100 ..." or "GPU at 0000:01:00.0"); none: []."""
    return _driver_gpus(proc) or _smi_gpus(smi, smi_timeout_s)


async def find_nvidia_gpus() -> list[str]:
    """list_nvidia_gpus off the event loop (nvidia-smi can take seconds on a busy driver)."""
    return await asyncio.to_thread(list_nvidia_gpus)
