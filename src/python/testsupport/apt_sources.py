"""The Debian mirror this machine's apt already uses, read from its sources.

The local base image is made with debootstrap, which needs a mirror: taking the one apt is
configured with keeps every host name out of the code and works behind whatever mirror or proxy
the machine was set up for. Both of apt's formats are read: deb822 `*.sources` stanzas and
one-line `sources.list` / `*.list` entries, in apt's order (sources.list, then sources.list.d by
name).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

APT_DIR = Path("/etc/apt")

# `deb [ options ] URI SUITE [COMPONENT...]`; the options may hold spaces inside the brackets.
_ONE_LINE = re.compile(r"(?P<type>\S+)\s+(?:\[[^\]]*\]\s*)?(?P<uri>\S+)\s+(?P<suite>\S+)")
_FIELD = re.compile(r"(?P<name>[^\s:]+):(?P<value>.*)")
# apt's spellings of false for `Enabled:`.
_DISABLED = {"no", "false", "off", "0"}


class AptSourcesError(Exception):
    """No usable entry in apt's sources, or a file apt itself would refuse."""


@dataclass(frozen=True)
class AptSource:
    types: tuple[str, ...]
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    enabled: bool = True

    def serves(self, suite: str) -> bool:
        return self.enabled and "deb" in self.types and suite in self.suites


def _source_files(apt_dir: Path) -> list[Path]:
    files = [apt_dir / "sources.list"] if (apt_dir / "sources.list").is_file() else []
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        # apt reads only these two suffixes; anything else there (`*.disabled`, backups) it skips.
        files += sorted(
            path
            for path in parts.iterdir()
            if path.suffix in (".list", ".sources") and path.is_file()
        )
    return files


def read_sources(path: Path) -> list[AptSource]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".sources":
        return [_deb822_source(path, fields) for fields in _deb822_stanzas(path, text)]
    return list(_one_line_sources(text))


def mirror_for_suite(suite: str, apt_dir: Path = APT_DIR) -> str:
    """The first URI of an enabled `deb` entry for exactly `suite` (not SUITE-security)."""
    files = _source_files(apt_dir)
    for path in files:
        for source in read_sources(path):
            if source.serves(suite):
                return source.uris[0]
    looked_at = ", ".join(map(str, files)) or f"{apt_dir} (no sources.list or sources.list.d)"
    raise AptSourcesError(f"no enabled 'deb' entry for suite {suite!r} in {looked_at}")


def _one_line_sources(text: str) -> Iterator[AptSource]:
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip()
        match = _ONE_LINE.match(entry)
        if match:
            yield AptSource((match["type"],), (match["uri"],), (match["suite"],))


def _deb822_stanzas(path: Path, text: str) -> Iterator[dict[str, str]]:
    fields: dict[str, str] = {}
    name = ""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("#"):
            continue
        if not line.strip():
            if fields:
                yield fields
            fields, name = {}, ""
        elif line[0] in " \t":
            if not name:
                raise AptSourcesError(f"{path}:{number}: continuation line outside a field")
            fields[name] += "\n" + line.strip()
        else:
            field = _FIELD.match(line)
            if field is None:
                raise AptSourcesError(f"{path}:{number}: not a 'Field: value' line: {line!r}")
            name = field["name"].lower()
            fields[name] = field["value"].strip()
    if fields:
        yield fields


def _deb822_source(path: Path, fields: dict[str, str]) -> AptSource:
    missing = [name for name in ("types", "uris", "suites") if not fields.get(name)]
    if missing:
        raise AptSourcesError(f"{path}: a stanza without {', '.join(missing)}")
    return AptSource(
        types=tuple(fields["types"].split()),
        uris=tuple(fields["uris"].split()),
        suites=tuple(fields["suites"].split()),
        enabled=fields.get("enabled", "yes").strip().lower() not in _DISABLED,
    )
