"""What a running `up` owns, on disk: so `status`, `down`, `logs` and the next `up` find it.

One JSON file per project under $XDG_STATE_HOME/personaplex (default ~/.local/state); the
local services' logs live beside it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


def state_home(environ: Mapping[str, str]) -> Path:
    xdg = environ.get("XDG_STATE_HOME")
    if xdg:
        return Path(xdg) / "personaplex"
    return Path(environ.get("HOME") or Path.home()) / ".local" / "state" / "personaplex"


@dataclass(frozen=True)
class ProcessRecord:
    service: str
    pid: int
    # The process group: the service's leader and everything it started (uvicorn's workers).
    pgid: int
    command: str


@dataclass
class RunRecord:
    session: str
    orchestrator_pid: int
    processes: list[ProcessRecord] = field(default_factory=list)
    endpoints: dict[str, str] = field(default_factory=dict)
    container_id: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        data: dict[str, Any] = json.loads(text)
        processes = [ProcessRecord(**p) for p in data.get("processes", [])]
        return cls(
            session=str(data["session"]),
            orchestrator_pid=int(data["orchestrator_pid"]),
            processes=processes,
            endpoints=dict(data.get("endpoints", {})),
            container_id=data.get("container_id"),
        )


class RunState:
    def __init__(self, directory: Path, project: str) -> None:
        self.directory = directory / project
        self.path = directory / f"{project}.json"

    def log_path(self, service: str) -> Path:
        return self.directory / "logs" / f"{service}.log"

    def load(self) -> RunRecord | None:
        try:
            return RunRecord.from_json(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            # A file torn by a crash is as good as none: the sweep by label still runs.
            return None

    def save(self, record: RunRecord) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(record.to_json())
        os.replace(temporary, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # An exited process its parent has not reaped yet still answers signal 0.
    with contextlib.suppress(OSError, IndexError):
        return not Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].startswith("Z")
    return True


def live_members(pgid: int) -> list[int] | None:
    """The group's processes that have not exited (zombies are not); None without /proc."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return None
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(") ", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def group_alive(pgid: int) -> bool:
    # Killed members stay in the group as zombies until a (sub)reaper collects them; they
    # hold no ports and run no code, so they do not count.
    members = live_members(pgid)
    if members is not None:
        return bool(members)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_ours(record: ProcessRecord) -> bool:
    """Guards against a recycled pid: on Linux the leader's command line must still match."""
    cmdline = Path(f"/proc/{record.pid}/cmdline")
    if not sys.platform.startswith("linux") or not cmdline.exists():
        return True  # the leader is gone (its group may linger) or no /proc to ask
    with contextlib.suppress(OSError):
        return record.command in cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return True


def kill_group(record: ProcessRecord, sig: signal.Signals = signal.SIGKILL) -> bool:
    """Signal a leftover service's process group; False when nothing of it was left."""
    if not group_alive(record.pgid) or not _is_ours(record):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(record.pgid, sig)
    return True
