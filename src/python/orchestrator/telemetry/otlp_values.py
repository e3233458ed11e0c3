"""OTLP's common values (AnyValue, attribute lists, resources) as plain JSON-able Python."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

# A resource that names no service still gets a row: the SDK's own default is this name too.
UNKNOWN_SERVICE = "unknown_service"


def plain(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [plain(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    return {pair.key: plain(pair.value) for pair in pairs}


def service_name(resource: Resource) -> str:
    for pair in resource.attributes:
        if pair.key == "service.name" and pair.value.string_value:
            return str(pair.value.string_value)
    return UNKNOWN_SERVICE


def hex_id(raw: bytes) -> str | None:
    """A trace or span id in hex; None for the empty (or all-zero: invalid) id."""
    return raw.hex() if raw and any(raw) else None


def ms(unix_nano: int) -> float:
    return unix_nano / 1e6
