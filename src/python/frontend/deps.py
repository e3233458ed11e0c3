"""FastAPI dependencies: the app's shared state, for HTTP and WebSocket routes alike."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from opentelemetry import trace
from starlette.requests import HTTPConnection

from frontend.backend_client import BackendClient
from frontend.backend_pool import BackendPool
from frontend.log_broadcast import LogBroadcast
from frontend.settings import FrontendSettings
from frontend.state import AppState


def get_state(connection: HTTPConnection) -> AppState:
    state: AppState = connection.app.state.frontend
    return state


def get_settings(state: Annotated[AppState, Depends(get_state)]) -> FrontendSettings:
    return state.settings


def get_logs(state: Annotated[AppState, Depends(get_state)]) -> LogBroadcast:
    return state.logs


def get_tracer(state: Annotated[AppState, Depends(get_state)]) -> trace.Tracer:
    return state.tracer


def get_backend_client(state: Annotated[AppState, Depends(get_state)]) -> BackendClient:
    return state.backend_client


def get_pool(state: Annotated[AppState, Depends(get_state)]) -> BackendPool:
    return state.pool


StateDep = Annotated[AppState, Depends(get_state)]
SettingsDep = Annotated[FrontendSettings, Depends(get_settings)]
LogsDep = Annotated[LogBroadcast, Depends(get_logs)]
BackendClientDep = Annotated[BackendClient, Depends(get_backend_client)]
PoolDep = Annotated[BackendPool, Depends(get_pool)]
TracerDep = Annotated[trace.Tracer, Depends(get_tracer)]
