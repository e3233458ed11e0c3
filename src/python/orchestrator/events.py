"""The typed events that watchers publish and subscribers (printer, dashboard) consume."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum

BACKEND = "moshi-backend"
FRONTEND = "frontend"
BUILD = "build"
ORCHESTRATOR = "orchestrator"


class ResourceState(str, Enum):
    PENDING = "pending"
    # Listed before it starts: StateChanged.waiting_for says on what.
    WAITING = "waiting"
    PULLING = "pulling"
    BUILDING = "building"
    STARTING = "starting"
    # Asked for (dashboard): the resource is stopped and started again.
    RESTARTING = "restarting"
    HEALTHY = "healthy"
    FAILED = "failed"
    STOPPING = "stopping"
    STOPPED = "stopped"
    # A persistent container that is left running when the orchestrator exits.
    DETACHED = "detached"


class ResourceKind(str, Enum):
    CONTAINER = "container"
    PROCESS = "process"


class Level(str, Enum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class StateChanged:
    resource: str
    state: ResourceState
    detail: str = ""
    endpoint: str | None = None
    # Set when known (on start); a later event without them keeps what was said before.
    kind: ResourceKind | None = None
    image: str | None = None
    # What a WAITING resource waits for, in words ("moshi-backend to be healthy").
    waiting_for: str = ""
    # Wall-clock time of the change, for uptimes.
    at: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class LogLine:
    resource: str
    text: str


@dataclass(frozen=True, slots=True)
class Progress:
    resource: str
    # None when the amount of work is unknown (a spinner rather than a bar).
    fraction: float | None
    message: str


@dataclass(frozen=True, slots=True)
class Notice:
    text: str
    level: Level = Level.INFO


Event = StateChanged | LogLine | Progress | Notice
