"""`up --backend local` with a model engine: the server PEX that `./pants package` makes (a
stand-in ./pants here: the real packaging is the browser test's, up_model_browser_test.py), and
the one-line errors when there is no PEX to run, and a PEX backend outliving a killed `up`."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from orchestrator.testing import (
    UP_LINE,
    orchestrator_process,
    project_processes,
    run_orchestrator,
    stack_env,
    unique_project,
)

# Where Pants puts the loopback server PEX (runtime_package_dependencies) in this sandbox: a real
# venv PEX in seconds, where the model server takes minutes (up_model_browser_test.py has it).
LOOPBACK_PEX = "src.python.moshi_backend/server-loopback.pex"

# Writes the command it was given and a "server PEX" that reports how it was started, then fails.
_STAND_IN_PANTS = """#!/bin/sh
echo "$@" > pants-arguments
mkdir -p dist/src.python.moshi_backend/server.pex
cat > dist/src.python.moshi_backend/server.pex/__main__.py <<'EOF'
import json, os, sys
with open(os.environ["STARTED_AS"], "w") as report:
    json.dump({"argv": sys.argv, "env": dict(os.environ)}, report)
print("stand-in server: exiting")
sys.exit(3)
EOF
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    project = unique_project()
    return stack_env(
        tmp_path,
        project,
        {
            "PERSONAPLEX_REPO_ROOT": str(tmp_path / "repo"),
            "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "PEX_EXTRA_SYS_PATH": "/must/not/reach/the/pex",
            "STARTED_AS": str(tmp_path / "started-as.json"),
        },
    )


def test_a_model_engine_runs_the_server_pex_that_pants_packages(
    env: dict[str, str], tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "pants").write_text(_STAND_IN_PANTS)
    (repo / "pants").chmod(0o755)
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    arguments = ["up", "--backend", "local", "--engine", "personaplex", "--gpu", "off"]
    result = run_orchestrator([*arguments, "--hf-repo", str(checkpoint)], env)

    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert (repo / "pants-arguments").read_text().split() == [
        "--concurrent",
        "package",
        "src/python/moshi_backend:server",
    ]
    assert "the backend runs PERSONAPLEX on the CPU (MOSHI_GPU=off) from the server PEX" in output
    pex_root = tmp_path / "cache" / "personaplex" / "pex"
    assert f"first start: unpacking the PEX into {pex_root}" in output
    assert "moshi-backend exited with code 3 before it became healthy" in output
    assert "stand-in server: exiting" in output  # its last lines, relayed

    started = json.loads((tmp_path / "started-as.json").read_text())
    pex = repo / "dist" / "src.python.moshi_backend" / "server.pex"
    assert started["argv"][0] == str(pex)
    port = env["MOSHI_PORT"]
    assert started["argv"][1:] == [
        "--host", "127.0.0.1", "--port", port, "--engine", "personaplex"
    ]  # fmt: skip
    child = started["env"]
    assert child["MOSHI_DEVICE"] == "cpu" and child["MOSHI_HF_REPO"] == str(checkpoint)
    assert child["PEX_ROOT"] == str(pex_root)
    assert "PYTHONPATH" not in child and "PEX_EXTRA_SYS_PATH" not in child
    assert project_processes(env["PERSONAPLEX_PROJECT"]) == []


def test_a_backend_pex_that_does_not_exist_is_a_one_line_error(
    env: dict[str, str], tmp_path: Path
) -> None:
    absent = tmp_path / "absent.pex"
    arguments = ["up", "--backend", "local", "--engine", "moshi", "--backend-pex", str(absent)]
    result = run_orchestrator(arguments, env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"orchestrator: --backend-pex {absent}: no such PEX\n" in result.stderr


def test_a_model_engine_without_pants_or_a_backend_pex_is_a_one_line_error(
    env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "repo").mkdir()
    result = run_orchestrator(["up", "--backend", "local", "--engine", "personaplex"], env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        f"orchestrator: no ./pants in {tmp_path / 'repo'} to package "
        "src/python/moshi_backend:server; run from the repository root, or pass --backend-pex "
        "(MOSHI_BACKEND_PEX)\n"
    ) in result.stderr


def test_a_pex_backend_that_a_killed_up_left_is_swept_by_the_next_up(env: dict[str, str]) -> None:
    project = env["PERSONAPLEX_PROJECT"]
    arguments = ["up", "--backend", "local", "--engine", "loopback", "--backend-pex", LOOPBACK_PEX]
    with orchestrator_process(arguments, env, project) as first:
        output = first.wait_output(UP_LINE, timeout_s=180)
        assert "first start: unpacking the PEX into" in output
        assert first.signal_and_wait(signal.SIGKILL) == -signal.SIGKILL
        # The PEX re-executed itself into its environment's interpreter, holding the port.
        assert project_processes(project)
        with orchestrator_process(arguments, env, project) as second:
            output = second.wait_output(UP_LINE, timeout_s=180)
            assert "stopped leftovers of a crashed run" in output
            assert "first start: unpacking" not in output
            assert second.signal_and_wait(signal.SIGTERM) == 143
        assert project_processes(project) == []
