"""What the Docker SDK's errors mean, in words a user can act on.

The SDK reports most failures as text (the engine's explanation, or a cause nested several
wrappers deep), so this is the one place that reads those texts.
"""

from __future__ import annotations

from orchestrator.errors import OrchestratorError

_CONNECTION_REASONS = {
    "FileNotFoundError": "no such socket",
    "ConnectionRefusedError": "connection refused",
    "PermissionError": "permission denied",
    "Connection refused": "connection refused",
}
# The engine's answer to a GPU request without the NVIDIA runtime.
_NO_GPU_DRIVER = "could not select device driver"
_PORT_TAKEN = ("port is already allocated", "address already in use")


class NoGpuDriver(Exception):
    """A GPU was asked for and the engine cannot provide one; the container can run without."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def connection_reason(text: str) -> str:
    """The gist of why no engine answered."""
    for needle, reason in _CONNECTION_REASONS.items():
        if needle in text:
            return reason
    return text.splitlines()[0][:160] if text else "unknown error"


def start_failure(
    explanation: str, *, service: str, gpu: bool, port: int, host: str, port_option: str
) -> Exception:
    """The error to raise when the engine refused to start a service's container."""
    if gpu and _NO_GPU_DRIVER in explanation:
        return NoGpuDriver(explanation)
    if any(taken in explanation for taken in _PORT_TAKEN):
        return OrchestratorError(
            f"port {port} on {host} is in use; choose another with {port_option}"
        )
    return OrchestratorError(f"cannot start the {service} container: {explanation}")
