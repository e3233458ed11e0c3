"""Turns MOSHI_ENGINE into an engine object."""

from __future__ import annotations

import importlib
import importlib.util
import logging
from pathlib import Path

from moshi_backend.engines.base import Engine, EngineError
from moshi_backend.engines.loopback import LoopbackEngine
from moshi_backend.settings import BackendSettings, DeviceChoice, EngineName

log = logging.getLogger(__name__)

_LOOPBACK_CAPACITY = 16
# Imported by name so that a server built without torch (the loopback PEX) still starts; the
# production PEX depends on this module explicitly.
_MODEL_ENGINES = "moshi_backend.engines.model.factory"
_NVIDIA_DEVICE = Path("/dev/nvidia0")


def model_engines_available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "moshi"))


def _model_engine(name: EngineName, settings: BackendSettings) -> Engine:
    try:
        factory = importlib.import_module(_MODEL_ENGINES)
    except ImportError as error:
        raise EngineError(
            f"MOSHI_ENGINE={name.value}: this build has no model engines ({error}); the "
            "production server (src/python/moshi_backend:server) has them, or use "
            "MOSHI_ENGINE=loopback for the development echo"
        ) from None
    engine: Engine = factory.create_model_engine(name, settings)
    return engine


def _auto_choice(settings: BackendSettings) -> EngineName:
    # Without a GPU a 7B model runs far slower than real time: the echo is the useful default.
    wants_gpu = settings.moshi_device is not DeviceChoice.CPU
    if model_engines_available() and wants_gpu and _NVIDIA_DEVICE.exists():
        return EngineName.PERSONAPLEX
    return EngineName.LOOPBACK


def create_engine(settings: BackendSettings) -> Engine:
    choice = settings.moshi_engine
    if choice is EngineName.AUTO:
        choice = _auto_choice(settings)
        if choice is EngineName.LOOPBACK:
            log.warning(
                "MOSHI_ENGINE=auto: no NVIDIA GPU with a model engine here; using the LOOPBACK "
                "development engine (echoes audio, no model). MOSHI_ENGINE=personaplex runs "
                "the model anyway (on CPU: far slower than real time)"
            )
        else:
            log.info("MOSHI_ENGINE=auto: NVIDIA GPU found, using %s", choice.value)
    if choice in (EngineName.PERSONAPLEX, EngineName.MOSHI):
        return _model_engine(choice, settings)
    return LoopbackEngine(
        delay_ms=settings.moshi_loopback_delay_ms,
        capacity=settings.moshi_max_sessions or _LOOPBACK_CAPACITY,
    )
