from __future__ import annotations

import stat
from pathlib import Path

import pytest

from orchestrator.errors import OrchestratorError
from orchestrator.secret_store import SecretStore


def test_set_writes_an_owner_only_file_and_load_reads_it(tmp_path: Path) -> None:
    store = SecretStore.default({"XDG_CONFIG_HOME": str(tmp_path)})
    assert store.path == tmp_path / "personaplex" / "secrets.toml"
    store.set("hf_token", 'hf_with"quote\\')
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    assert store.load() == {"HF_TOKEN": 'hf_with"quote\\'}


def test_default_location_is_under_home(tmp_path: Path) -> None:
    store = SecretStore.default({"HOME": str(tmp_path)})
    assert store.path == tmp_path / ".config" / "personaplex" / "secrets.toml"


def test_a_file_others_can_read_is_refused(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "secrets.toml")
    store.set("HF_TOKEN", "hf_x")
    store.path.chmod(0o644)
    with pytest.raises(OrchestratorError, match="chmod 600"):
        store.load()


@pytest.mark.parametrize(("name", "value"), [("OTHER", "x"), ("HF_TOKEN", "")])
def test_unknown_or_empty_secret_is_refused(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(OrchestratorError):
        SecretStore(tmp_path / "secrets.toml").set(name, value)
