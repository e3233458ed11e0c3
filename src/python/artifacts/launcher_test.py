"""The ./pants launcher checks what it installs: a distribution whose sha256 is not the pinned one,
or a pex CLI that is not the known one, stops it with one line naming what did not match and the
log. Each test runs a copy of the launcher and its files whose pin was altered, with its cache in
a temporary directory; pip and pex reach the package index as the launcher itself does."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

LAUNCHER = "pants"
REQUIREMENTS = "3rdparty/pants-launcher/requirements.txt"
_FILES = (LAUNCHER, "pants.toml", REQUIREMENTS)
_KNOWN_PEX_CLI = "05fa5854565cd42c3c8e2ac7f3e2ba2c5e49994ec4c951a71f062b21b15ce8c5"


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    for name in _FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(name, root / name)
    return root


def _run(root: Path) -> subprocess.CompletedProcess[str]:
    # The caller's environment, less what Pants sets for its own processes: its
    # PIP_CONFIG_FILE=/dev/null ([subprocess-environment]) would hide the pip configuration
    # (certificates, mirrors) that the launcher uses, as a user's shell has it.
    env = {
        key: value
        for key, value in os.environ.items()
        if (not key.startswith("PANTS_") or key == "PANTS_LAUNCHER_PYTHON")
        and key not in ("GIT_COMMIT", "PIP_CONFIG_FILE")
    }
    env["PANTS_LAUNCHER_CACHE"] = str(root / "cache")
    return subprocess.run(
        # --no-pantsd: a launcher that wrongly went on leaves no daemon behind.
        ["bash", str(root / LAUNCHER), "--no-pantsd", "--version"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _only_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pants launcher: ")
    return lines[0]


def _log(line: str) -> str:
    match = re.search(r"\(log: (.+)\)$", line)
    assert match, line
    return Path(match.group(1)).read_text()


def _flip(digest: str) -> str:
    return ("1" if digest[0] == "0" else "0") + digest[1:]


def _break_first_distribution(requirements: Path) -> str:
    """Every sha256 of the file's first distribution altered; its name==version."""
    lines = requirements.read_text().splitlines(keepends=True)
    first = next(index for index, line in enumerate(lines) if line[:1].isalpha())
    index = first + 1
    while lines[index].lstrip().startswith("--hash=sha256:"):
        lines[index] = re.sub(r"(?<=sha256:)[0-9a-f]{64}", lambda m: _flip(m[0]), lines[index])
        index += 1
    assert index > first + 1, "the first distribution has no hash"
    requirements.write_text("".join(lines))
    return lines[first].split()[0]


def test_a_distribution_that_does_not_match_its_pinned_sha256_stops_the_install(
    tmp_path: Path,
) -> None:
    root = _copy(tmp_path)
    # The first distribution pip takes after pex is small: it fails before Pants is downloaded.
    requirement = _break_first_distribution(root / REQUIREMENTS)
    line = _only_line(_run(root))
    assert f"({requirement}) does not match its sha256 in {REQUIREMENTS}" in line
    assert "DO NOT MATCH THE HASHES" in _log(line)
    # Nothing counts as installed (the copy of the requirements is written last): the next run
    # tries again.
    assert not list((root / "cache").glob("pants-*/.launcher-requirements.txt"))


def test_a_pex_cli_that_is_not_the_known_one_stops_the_install(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    launcher = root / LAUNCHER
    text = launcher.read_text()
    assert text.count(_KNOWN_PEX_CLI) == 1
    launcher.write_text(text.replace(_KNOWN_PEX_CLI, _flip(_KNOWN_PEX_CLI)))
    line = _only_line(_run(root))
    assert f"CLI built here has sha256 {_KNOWN_PEX_CLI} (4098315 bytes)" in line
    assert f"not the known {_flip(_KNOWN_PEX_CLI)} (4098315 bytes)" in line
    _log(line)
    # The CLI is checked before Pants is installed, and nothing of it stays.
    assert not list((root / "cache").glob("pex-*/*"))
    assert not list((root / "cache").glob("pants-*/bin/pants"))
