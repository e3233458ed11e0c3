"""The user's secrets file (HF_TOKEN): TOML, readable by its owner only."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path

from orchestrator.errors import OrchestratorError

KNOWN_SECRETS = ("HF_TOKEN",)


def config_home(environ: Mapping[str, str]) -> Path:
    xdg = environ.get("XDG_CONFIG_HOME")
    if xdg:
        return Path(xdg)
    return Path(environ.get("HOME") or Path.home()) / ".config"


class SecretStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def default(cls, environ: Mapping[str, str]) -> SecretStore:
        return cls(config_home(environ) / "personaplex" / "secrets.toml")

    def load(self) -> dict[str, str]:
        try:
            mode = self.path.stat().st_mode
        except FileNotFoundError:
            return {}
        except OSError as error:
            raise OrchestratorError(f"cannot read {self.path}: {error.strerror}") from error
        if stat.S_IMODE(mode) & 0o077:
            # Like ssh with a private key: a token others can read is refused, not used.
            raise OrchestratorError(
                f"{self.path} is readable by others (mode {stat.S_IMODE(mode):o}); "
                f"run: chmod 600 {self.path}"
            )
        try:
            document = tomllib.loads(self.path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise OrchestratorError(f"cannot read {self.path}: {error}") from error
        return {str(k).upper(): str(v) for k, v in document.items() if isinstance(v, str)}

    def set(self, name: str, value: str) -> None:
        name = name.upper()
        if name not in KNOWN_SECRETS:
            raise OrchestratorError(
                f"unknown secret {name}; known: {', '.join(KNOWN_SECRETS)}", exit_code=2
            )
        if not value:
            raise OrchestratorError(f"empty value for {name}; nothing stored", exit_code=2)
        values = self.load()
        values[name] = value
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # JSON strings are valid TOML basic strings, escapes included.
        text = "".join(f"{key} = {json.dumps(val)}\n" for key, val in sorted(values.items()))
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        temporary.unlink(missing_ok=True)
        # Created 0600 from the start: never a moment where the token is readable by others.
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w") as file:
                file.write(text)
            os.replace(temporary, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
