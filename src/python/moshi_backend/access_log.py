"""The backend's HTTP access log, without the health and metrics polls that drown it."""

from __future__ import annotations

from aiohttp import web
from aiohttp.web_log import AccessLogger

# Polled every few seconds by the frontend, the orchestrator, Docker and Prometheus.
_POLLED = frozenset({"/health", "/metrics"})


class QuietPollsAccessLogger(AccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if request.path in _POLLED and response.status < 400:
            return
        super().log(request, response, time)
