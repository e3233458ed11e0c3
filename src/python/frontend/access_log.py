"""The frontend's access log, without the health polls that drown it (the dashboard, Docker's
health check and Kubernetes' probes each ask every few seconds)."""

from __future__ import annotations

import logging

ACCESS_LOGGER = "uvicorn.access"
_POLLED = frozenset({"/health"})


class QuietPolls(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn's access records: (client, method, path, http version, status).
        if isinstance(record.args, tuple) and len(record.args) == 5:
            path, status = record.args[2], record.args[4]
            if path in _POLLED and isinstance(status, int) and status < 400:
                return False
        return True
