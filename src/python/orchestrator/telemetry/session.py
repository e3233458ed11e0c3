"""Telemetry of one `up`: the store (history included) and, unless turned off, the OTLP
receiver the services export to."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.environments import OTLP_ENDPOINT
from orchestrator.telemetry.receiver import OtlpReceiver
from orchestrator.telemetry.redaction import Mask
from orchestrator.telemetry.store import TelemetryStore

LOOPBACK = "127.0.0.1"


class Telemetry:
    def __init__(
        self,
        store: TelemetryStore,
        receiver: OtlpReceiver | None = None,
        *,
        user_endpoint: str | None = None,
    ) -> None:
        """user_endpoint: the caller's own OTEL_EXPORTER_OTLP_ENDPOINT, which the services get
        instead of the receiver's."""
        self.store = store
        self.receiver = receiver
        self.user_endpoint = user_endpoint
        self._extra_hosts: dict[str, int] = {}

    @classmethod
    async def start(
        cls,
        state_dir: Path,
        environ: Mapping[str, str],
        *,
        enabled: bool,
        port: int | None,
        mask: Mask | None = None,
        store: TelemetryStore | None = None,
    ) -> Telemetry:
        """The receiver listening on loopback (when enabled) and the store open; the history is
        read even when telemetry is off. OrchestratorError when the port cannot be had."""
        store = store or TelemetryStore(state_dir, mask=mask)
        await asyncio.to_thread(store.open, new_run=enabled)
        if not enabled:
            return cls(store)
        receiver = OtlpReceiver(store.add)
        try:
            await receiver.start(LOOPBACK, port)
        except BaseException:
            await asyncio.to_thread(store.close)
            raise
        return cls(store, receiver, user_endpoint=environ.get(OTLP_ENDPOINT) or None)

    @property
    def endpoint(self) -> str | None:
        """The receiver's address on loopback, for local processes."""
        return f"http://{LOOPBACK}:{self.receiver.port}" if self.receiver else None

    def for_services(self) -> str | None:
        """What the services' OTEL_EXPORTER_OTLP_ENDPOINT is set to; None: nothing is set (off,
        or the caller's own endpoint passes through)."""
        return None if self.user_endpoint else self.endpoint

    async def for_containers(self, gateway: str) -> str | None:
        """The endpoint for containers of a Docker network whose gateway (this host's address on
        it) is given: the receiver listens there too, reachable from that network only."""
        if self.receiver is None or self.user_endpoint:
            return None
        if gateway not in self._extra_hosts:
            self._extra_hosts[gateway] = await self.receiver.listen_also(gateway)
        return f"http://{gateway}:{self._extra_hosts[gateway]}"

    def status(self) -> dict[str, Any]:
        store, receiver = self.store, self.receiver
        refused = receiver.dropped_requests if receiver else 0
        status: dict[str, Any] = {
            "enabled": receiver is not None,
            "endpoint": self.endpoint,
            "received": dict(store.received),
            # Lost entries, plus whole requests refused under load (their entries are unknown).
            "dropped": store.dropped + refused,
            "dropped_requests": refused,
            "run": store.run_id,
            "listening": [
                f"{host}:{port}"
                for host, port in ([(LOOPBACK, receiver.port)] if receiver else [])
                + list(self._extra_hosts.items())
            ],
        }
        if self.user_endpoint:
            # Not the address itself: it may hold credentials.
            status["services_export_elsewhere"] = True
        if store.history_failure:
            status["history_error"] = store.history_failure
        return status

    async def stop(self) -> None:
        """Receiver first (requests in flight are stored), then the history flushed and closed."""
        if self.receiver is not None:
            await self.receiver.stop()
        await asyncio.to_thread(self.store.close)
