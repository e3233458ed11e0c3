from __future__ import annotations

from pathlib import Path

import pytest

from testsupport.base_image import debian_mirror
from testsupport.environment import TestEnvironment
from testsupport.gate import Unavailable

# Explicitly unset: DEBIAN_MIRROR reaches the tests when the machine sets it.
_FROM_APT = TestEnvironment(debian_mirror=None)


def _apt_dir(root: Path) -> Path:
    (root / "sources.list").write_text("deb http://mirror.example/debian bookworm main\n")
    return root


def test_the_mirror_comes_from_apt_sources(tmp_path: Path) -> None:
    assert debian_mirror(_FROM_APT, _apt_dir(tmp_path)) == "http://mirror.example/debian"


def test_debian_mirror_overrides_apt_sources(tmp_path: Path) -> None:
    env = TestEnvironment(debian_mirror="http://override.example/debian")
    assert debian_mirror(env, _apt_dir(tmp_path)) == "http://override.example/debian"


def test_no_mirror_is_unavailable_and_says_how_to_give_one(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="no Debian mirror for debootstrap: .*DEBIAN_MIRROR"):
        debian_mirror(_FROM_APT, tmp_path)
