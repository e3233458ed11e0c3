"""Turns MOSHI_ENGINE into an engine object."""

from __future__ import annotations

import logging

from moshi_backend.engine import Engine, EngineError
from moshi_backend.engines.loopback import LoopbackEngine
from moshi_backend.settings import BackendSettings, EngineName

log = logging.getLogger(__name__)

_LOOPBACK_CAPACITY = 16


def _model_engine(name: EngineName, settings: BackendSettings) -> Engine:
    # The PersonaPlex and Moshi engines (torch) are not part of this build yet.
    raise EngineError(
        f"MOSHI_ENGINE={name.value}: this build has no {name.value} engine yet; "
        "use MOSHI_ENGINE=loopback (development echo) or auto"
    )


def create_engine(settings: BackendSettings) -> Engine:
    choice = settings.moshi_engine
    if choice in (EngineName.PERSONAPLEX, EngineName.MOSHI):
        return _model_engine(choice, settings)
    if choice is EngineName.AUTO:
        log.warning(
            "MOSHI_ENGINE=auto: no model engine can run in this build; using the LOOPBACK "
            "development engine (echoes audio, no model)"
        )
    return LoopbackEngine(
        delay_ms=settings.moshi_loopback_delay_ms,
        capacity=settings.moshi_max_sessions or _LOOPBACK_CAPACITY,
    )
