"""A tiny model checkpoint for the orchestrator's tests, written by the server PEX's own
interpreter with the model engines' own writer (testing_checkpoints.py, present as a plain file):
torch stays out of the orchestrator's test requirements, each set of which with torch costs
minutes and gigabytes to build."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

WRITER = Path("src/python/moshi_backend/engines/model/testing_checkpoints.py")
# Loaded by path: the writer is not in the server PEX, its imports all are.
_WRITE = """
import importlib.util, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("testing_checkpoints", sys.argv[1])
writer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(writer)
writer.write_tiny_repository(Path(sys.argv[2]))
print(writer.TINY_VOICE)
"""


def write_tiny_checkpoint(server_pex: Path, target: Path, pex_root: Path) -> str:
    """A PersonaPlex-layout repository at target (weights, tokenizer, voices.tgz); returns the
    voice it holds. The PEX unpacks its environment under pex_root: give the one the stack's
    backend will use, and it starts without unpacking again."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PEX_") and key != "PYTHONPATH"
    }
    env.update({"PEX_ROOT": str(pex_root), "PEX_INTERPRETER": "1"})
    command = [sys.executable, str(server_pex), "-c", _WRITE, str(WRITER.resolve()), str(target)]
    written = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    if written.returncode != 0:
        raise AssertionError(f"writing the tiny checkpoint failed:\n{written.stderr[-4000:]}")
    return written.stdout.strip().splitlines()[-1]
