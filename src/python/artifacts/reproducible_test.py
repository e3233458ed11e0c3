"""Packaging is reproducible: each PEX that `./pants package` made (here through
runtime_package_dependencies) is rebuilt from its own inputs by the pex CLI that Pants drives,
in another directory with an empty cache, and must come out byte for byte the same."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from artifacts.pex_rebuild import PackagedPex, differences, digest, rebuild

PEX_CLI = Path("src.python.artifacts/pex-cli.pex")
PACKAGES = [
    # Packed (directories), as the images use them.
    "src.python.moshi_backend/server-loopback.pex",
    "src.python.frontend/app.pex",
    # A zipapp.
    "src.python.orchestrator/orchestrator.pex",
]


@pytest.mark.parametrize("package", PACKAGES)
def test_rebuilding_from_the_same_inputs_gives_the_same_sha256(
    package: str, tmp_path: Path
) -> None:
    packaged = PackagedPex.read(Path(package))
    rebuilt = rebuild(packaged, PEX_CLI, tmp_path)
    assert digest(rebuilt) == digest(packaged.path), differences(packaged.path, rebuilt)


@pytest.mark.parametrize("package", PACKAGES)
def test_the_archives_record_no_build_time(package: str) -> None:
    # What makes the rebuild above possible at another time: pex's fixed zip timestamps.
    path = Path(package)
    archives = [path] if path.is_file() else [path / ".bootstrap", *(path / ".deps").iterdir()]
    for archive in archives:
        with zipfile.ZipFile(archive) as opened:
            stamps = {entry.date_time for entry in opened.infolist()}
        assert stamps == {(1980, 1, 1, 0, 0, 0)}, archive


def test_the_rebuilding_pex_is_the_version_that_built_the_packages() -> None:
    # A Pants upgrade brings another pex; 3rdparty/python/BUILD's pex-tool pin must follow it.
    with zipfile.ZipFile(PEX_CLI) as archive:
        names = [n for n in archive.namelist() if n.startswith(".deps/pex-")]
    cli_version = names[0].split("/")[1].split("-")[1]
    for package in PACKAGES:
        assert PackagedPex.read(Path(package)).pex_version == cli_version, package
