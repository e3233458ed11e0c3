"""Rebuilding a packaged PEX from its own inputs with the pex CLI.

A PEX carries everything its build consumed: the first-party files, the installed
distributions (under .deps/) and the build options (PEX-INFO). Given the PEX itself as its
repository (`--pex-repository`), pex builds again from exactly those inputs, offline. When that
rebuild, made elsewhere, later and with an empty pex cache, is byte for byte the PEX Pants
packaged, the package is a function of the sources, the locked distributions and the pex
version only; the lockfile pins the distributions by hash, so packaging the same commit again
gives the same bytes.

Both layouts the repository packages: a zipapp (one file) and packed (a directory of files).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# What pex writes itself; everything else in a PEX is a first-party file.
_GENERATED_PREFIXES = (".bootstrap/", ".deps/", "__pex__/")
_GENERATED_FILES = frozenset({".bootstrap", "PEX-INFO", "__main__.py"})
# PEX-INFO entries that pex derives from the content rather than from options.
_DERIVED = frozenset(
    {"bootstrap_hash", "build_properties", "code_hash", "distributions", "pex_hash", "pex_path"}
)
# Options that option_arguments() turns into flags.
_TRANSLATED = frozenset(
    {
        "requirements",
        "interpreter_constraints",
        "entry_point",
        "venv",
        "venv_bin_path",
        "includes_tools",
        "strip_pex_env",
        "emit_warnings",
    }
)
# Options that the rebuild does not translate, with the value that needs no flag.
_DEFAULTS: dict[str, Any] = {
    "ignore_errors": False,
    "inject_args": [],
    "inject_env": {},
    "inherit_path": "false",
    "pex_paths": [],
    "venv_copies": False,
    "venv_hermetic_scripts": True,
    "venv_site_packages_copies": False,
}


class RebuildError(Exception):
    pass


def _generated(name: str) -> bool:
    return name in _GENERATED_FILES or name.startswith(_GENERATED_PREFIXES)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest(path: Path) -> dict[str, str]:
    """{relative path: sha256} of every file of a PEX (one entry for a zipapp).

    Not the files' modes: whoever materializes a packed PEX sets those (Pants makes a test's
    inputs read-only); the modes inside the zips are part of their bytes.
    """
    if path.is_file():
        return {path.name: _file_sha256(path)}
    return {
        str(file.relative_to(path)): _file_sha256(file)
        for file in sorted(path.rglob("*"))
        if file.is_file()
    }


def digest(path: Path) -> str:
    """sha256 of a zipapp; for a packed PEX, sha256 of its manifest (paths and contents)."""
    if path.is_file():
        return _file_sha256(path)
    lines = "".join(f"{name} {value}\n" for name, value in manifest(path).items())
    return hashlib.sha256(lines.encode()).hexdigest()


@dataclass(frozen=True)
class PackagedPex:
    path: Path
    info: dict[str, Any]
    shebang: str

    @classmethod
    def read(cls, path: Path) -> PackagedPex:
        if path.is_dir():
            info: dict[str, Any] = json.loads((path / "PEX-INFO").read_text())
            first_line = (path / "__main__.py").read_text().splitlines()[0]
        else:
            with zipfile.ZipFile(path) as archive:
                info = json.loads(archive.read("PEX-INFO"))
            with path.open("rb") as handle:
                first_line = handle.readline().decode()
        return cls(path, info, first_line.strip().removeprefix("#!"))

    @property
    def packed(self) -> bool:
        return self.path.is_dir()

    @property
    def pex_version(self) -> str:
        return str(self.info["build_properties"]["pex_version"])

    def extract_sources(self, directory: Path) -> None:
        if self.packed:
            for file in self.path.rglob("*"):
                relative = file.relative_to(self.path).as_posix()
                if file.is_file() and not _generated(relative):
                    (directory / relative).parent.mkdir(parents=True, exist_ok=True)
                    # With its mode: pex records it in the zip entry, hence in the hash.
                    shutil.copy2(file, directory / relative)
            return
        with zipfile.ZipFile(self.path) as archive:
            for entry in archive.infolist():
                if _generated(entry.filename):
                    continue
                target = Path(archive.extract(entry, directory))
                mode = (entry.external_attr >> 16) & 0o777
                if mode and not entry.is_dir():
                    # The mode is part of the zip entry, hence of the hash.
                    target.chmod(mode)

    def option_arguments(self) -> list[str]:
        """The pex flags that reproduce this PEX's build options."""
        info = self.info
        unexpected = {
            key: info[key]
            for key, default in _DEFAULTS.items()
            if key in info and info[key] != default
        }
        known = _DERIVED | _DEFAULTS.keys() | _TRANSLATED
        unexpected.update({key: value for key, value in info.items() if key not in known})
        if unexpected:
            raise RebuildError(f"PEX-INFO options this rebuild does not translate: {unexpected}")
        arguments = [*info["requirements"], "--layout", "packed" if self.packed else "zipapp"]
        arguments += ["--python-shebang", self.shebang]
        for constraint in info["interpreter_constraints"]:
            arguments += ["--interpreter-constraint", constraint]
        if info.get("entry_point"):
            arguments += ["--entry-point", info["entry_point"]]
        if info.get("venv"):
            arguments.append("--venv")
            if info.get("venv_bin_path", "false") != "false":
                arguments.append(info["venv_bin_path"])
        if info.get("includes_tools"):
            arguments.append("--include-tools")
        arguments.append("--strip-pex-env" if info["strip_pex_env"] else "--no-strip-pex-env")
        arguments.append("--emit-warnings" if info["emit_warnings"] else "--no-emit-warnings")
        return arguments


def rebuild(packaged: PackagedPex, pex_cli: Path, work: Path) -> Path:
    """The same PEX built again by pex_cli from packaged's own inputs, under work."""
    sources = work / "sources"
    sources.mkdir(parents=True)
    packaged.extract_sources(sources)
    output = work / "rebuilt" / packaged.path.name
    command = [
        sys.executable,
        str(pex_cli),
        "--pex-repository",
        str(packaged.path),
        "--sources-directory",
        str(sources),
        "--pex-root",
        str(work / "pex-root"),
        "--output-file",
        str(output),
        *packaged.option_arguments(),
    ]
    # Only what pex needs: the PEX_* variables of the test runner's own PEX must not leak in.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(work), "PIP_CONFIG_FILE": os.devnull}
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    if result.returncode != 0:
        raise RebuildError(f"pex exited {result.returncode}:\n{result.stderr[-3000:]}")
    return output


def differences(first: Path, second: Path) -> list[str]:
    """What differs between two PEX files, down to the zip entries, for a readable failure."""
    if first.is_dir():
        a, b = manifest(first), manifest(second)
        found = []
        for name in sorted(a.keys() | b.keys()):
            if a.get(name) == b.get(name):
                continue
            if name in a and name in b and zipfile.is_zipfile(first / name):
                found += [f"{name}: {d}" for d in _zip_differences(first / name, second / name)]
            else:
                found.append(f"{name}: {a.get(name)} != {b.get(name)}")
        return found
    return _zip_differences(first, second)


def _zip_differences(first: Path, second: Path) -> list[str]:
    with zipfile.ZipFile(first) as zip_a, zipfile.ZipFile(second) as zip_b:
        a = {i.filename: (i.CRC, i.date_time, oct(i.external_attr >> 16)) for i in zip_a.infolist()}
        b = {i.filename: (i.CRC, i.date_time, oct(i.external_attr >> 16)) for i in zip_b.infolist()}
    found = [
        f"{n} {a.get(n)} != {b.get(n)}" for n in sorted(a.keys() | b.keys()) if a.get(n) != b.get(n)
    ]
    if not found and list(a) != list(b):
        found.append("the same entries in another order")
    return found or ["the same entries, other zip metadata"]
