"""What a running `up` owns, on disk: so `status`, `down`, `logs` and the next `up` find it.

One JSON file per project under $XDG_STATE_HOME/personaplex (default ~/.local/state); the
local services' logs live beside it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

# psutil's start times are exact to a clock tick; a recycled pid starts seconds later at least.
_START_TOLERANCE_S = 0.5


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
    # The leader's start time (seconds since the epoch, as psutil gives it): with the command,
    # what tells our process from a stranger that was given the same pid later. None in a record
    # that cannot say, which is then never signalled while its pid is taken.
    started_at: float | None = None

    @classmethod
    def of(cls, service: str, pid: int, pgid: int, command: str) -> ProcessRecord:
        """The record of a process this run has just started."""
        return cls(service, pid, pgid, command, psutil.Process(pid).create_time())


@dataclass
class RunRecord:
    session: str
    orchestrator_pid: int
    processes: list[ProcessRecord] = field(default_factory=list)
    endpoints: dict[str, str] = field(default_factory=dict)

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
        )


class RunState:
    def __init__(self, directory: Path, project: str) -> None:
        self.directory = directory / project
        self.path = directory / f"{project}.json"

    @property
    def certs_dir(self) -> Path:
        """The stack's own certificate pair (MOSHI_USE_SSL), kept across runs."""
        return self.directory / "certs"

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


def _running(process: psutil.Process) -> bool:
    # An exited process its parent has not reaped yet is a zombie: it runs no code and holds
    # no ports, so it does not count.
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # somebody else's process: it exists, whatever it does


def pid_alive(pid: int) -> bool:
    try:
        return _running(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return False


def live_members(pgid: int) -> list[int]:
    """The group's processes that have not exited (zombies are not)."""
    members = []
    for process in psutil.process_iter():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(process.pid) == pgid and _running(process):
                members.append(process.pid)
    return members


def group_alive(pgid: int) -> bool:
    return bool(live_members(pgid))


def _is_ours(record: ProcessRecord) -> bool:
    """Guards against a recycled pid: the leader's start time and command line must match."""
    try:
        leader = psutil.Process(record.pid)
        started_at = leader.create_time()
        command = " ".join(leader.cmdline())
    except psutil.NoSuchProcess:
        # The leader is gone and its group lingers: a group id is not given to anyone else
        # while the group has members, so these are the leader's own children.
        return True
    except psutil.AccessDenied:
        return False
    if record.started_at is None or abs(started_at - record.started_at) > _START_TOLERANCE_S:
        return False
    return record.command in command


def kill_group(record: ProcessRecord, sig: signal.Signals = signal.SIGKILL) -> bool:
    """Signal a leftover service's process group; False when nothing of it was left."""
    if not group_alive(record.pgid) or not _is_ours(record):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(record.pgid, sig)
    return True
