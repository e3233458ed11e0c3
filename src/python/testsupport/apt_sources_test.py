from __future__ import annotations

from pathlib import Path

import pytest

from testsupport.apt_sources import AptSource, AptSourcesError, mirror_for_suite, read_sources

# The layout of a Debian 12 installation: main suite and updates in one stanza, security apart.
DEB822 = """\
Types: deb
# a snapshot of the same archive, kept as a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

# Earlier in apt's order than the real entry, and each unusable for its own reason.
DEB822_UNUSABLE = """\
# Switched off, not removed.
Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
Enabled: no

Types: deb-src
URIs: http://sources-only.example/debian
Suites: bookworm
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBGPL0BUBEADmW5NdOOHwPIJlgPu6JDcKw/NZJPR8lsD9K7UgrZSAlSfuDmqM
 -----END PGP PUBLIC KEY BLOCK-----
"""

ONE_LINE = """\
# deb http://commented-out.example/debian bookworm main
deb-src http://sources-only.example/debian bookworm main
deb [ arch=amd64 signed-by=/etc/apt/k.gpg ] http://mirror.example/debian bookworm main # main
deb [signed-by=/etc/apt/k.gpg] http://security.example/debian-security bookworm-security main
"""


def _apt_dir(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_deb822_stanzas_with_comments_and_several_suites(tmp_path: Path) -> None:
    path = _apt_dir(tmp_path, {"debian.sources": DEB822}) / "debian.sources"
    assert read_sources(path) == [
        AptSource(("deb",), ("http://mirror.example/debian",), ("bookworm", "bookworm-updates")),
        AptSource(("deb",), ("http://security.example/debian-security",), ("bookworm-security",)),
    ]


def test_deb822_mirror_is_the_one_serving_the_main_suite(tmp_path: Path) -> None:
    apt = _apt_dir(tmp_path, {"sources.list.d/debian.sources": DEB822})
    assert mirror_for_suite("bookworm", apt) == "http://mirror.example/debian"
    assert mirror_for_suite("bookworm-security", apt) == "http://security.example/debian-security"


def test_disabled_and_source_only_stanzas_are_skipped(tmp_path: Path) -> None:
    apt = _apt_dir(
        tmp_path,
        {
            "sources.list.d/a-unusable.sources": DEB822_UNUSABLE,
            "sources.list.d/debian.sources": DEB822,
        },
    )
    unusable = read_sources(apt / "sources.list.d/a-unusable.sources")
    assert [source.enabled for source in unusable] == [False, True]
    assert mirror_for_suite("bookworm", apt) == "http://mirror.example/debian"


def test_one_line_entries_with_options_and_comments(tmp_path: Path) -> None:
    apt = _apt_dir(tmp_path, {"sources.list": ONE_LINE})
    assert read_sources(apt / "sources.list") == [
        AptSource(("deb-src",), ("http://sources-only.example/debian",), ("bookworm",)),
        AptSource(("deb",), ("http://mirror.example/debian",), ("bookworm",)),
        AptSource(("deb",), ("http://security.example/debian-security",), ("bookworm-security",)),
    ]
    assert mirror_for_suite("bookworm", apt) == "http://mirror.example/debian"


def test_sources_list_comes_before_the_parts_and_other_suffixes_are_ignored(
    tmp_path: Path,
) -> None:
    apt = _apt_dir(
        tmp_path,
        {
            "sources.list": "deb http://first.example/debian bookworm main\n",
            "sources.list.d/a.list": "deb http://second.example/debian bookworm main\n",
        },
    )
    assert mirror_for_suite("bookworm", apt) == "http://first.example/debian"
    (apt / "sources.list").unlink()
    (apt / "sources.list.d/0.list.disabled").write_text("deb http://off.example/d bookworm main\n")
    assert mirror_for_suite("bookworm", apt) == "http://second.example/debian"


def test_a_missing_suite_names_the_files_looked_at(tmp_path: Path) -> None:
    apt = _apt_dir(
        tmp_path,
        {
            "sources.list": "deb http://mirror.example/debian bookworm-updates main\n",
            "sources.list.d/debian.sources": DEB822,
        },
    )
    with pytest.raises(AptSourcesError) as error:
        mirror_for_suite("trixie", apt)
    message = str(error.value)
    assert "'trixie'" in message
    assert str(apt / "sources.list") in message
    assert str(apt / "sources.list.d/debian.sources") in message


def test_no_sources_at_all_names_the_directory(tmp_path: Path) -> None:
    with pytest.raises(AptSourcesError, match="no sources.list or sources.list.d"):
        mirror_for_suite("bookworm", tmp_path)


def test_a_broken_deb822_line_names_file_and_line(tmp_path: Path) -> None:
    apt = _apt_dir(tmp_path, {"sources.list.d/x.sources": "Types: deb\nURIs http://x.example\n"})
    with pytest.raises(AptSourcesError, match=r"x\.sources:2: not a 'Field: value' line"):
        mirror_for_suite("bookworm", apt)
