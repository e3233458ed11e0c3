"""Secrets hidden in what the services send, before it is kept: the dashboard serves it and the
history stores it, where the masking of console lines never reaches."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from orchestrator.telemetry.records import Batch

Mask = Callable[[str], str]


def _masked(value: Any, mask: Mask) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, list):
        return [_masked(item, mask) for item in value]
    if isinstance(value, dict):
        return {key: _masked(item, mask) for key, item in value.items()}
    return value


def redact(batch: Batch, mask: Mask) -> Batch:
    """Every text of the batch's spans and log records through mask (metric points hold none)."""
    spans = [
        dataclasses.replace(
            span,
            name=mask(span.name),
            status_message=mask(span.status_message),
            attributes=_masked(span.attributes, mask),
            events=_masked(span.events, mask),
        )
        for span in batch.spans
    ]
    logs = [
        dataclasses.replace(entry, message=mask(entry.message), logger=mask(entry.logger))
        for entry in batch.logs
    ]
    return Batch(spans, logs, batch.points)
