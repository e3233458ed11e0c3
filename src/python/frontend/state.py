"""What the app's routes share, created once per app in its lifespan."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import httpx
from opentelemetry import trace

from frontend.backend_client import BackendClient
from frontend.backend_pool import BackendPool
from frontend.log_broadcast import LogBroadcast
from frontend.relay_metrics import RelayMetrics
from frontend.settings import FrontendSettings


@dataclass
class AppState:
    settings: FrontendSettings
    logs: LogBroadcast
    http: httpx.AsyncClient
    backend_client: BackendClient
    pool: BackendPool
    tracer: trace.Tracer
    # How the backend's TLS is verified (the pinned certificate, or the system's authorities).
    backend_ssl: ssl.SSLContext | bool
    relay_metrics: RelayMetrics
