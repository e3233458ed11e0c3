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
# How the engine words a failed pull (its own text, or the registry's error code after it).
_UNREACHABLE = (
    "connection refused",
    "no such host",
    "i/o timeout",
    "network is unreachable",
    "no route to host",
    "Client.Timeout exceeded",
    "TLS handshake timeout",
    "proxyconnect",
)
_UNKNOWN_IMAGE = ("manifest unknown", "not found", "name unknown")
_REFUSED = ("pull access denied", "unauthorized", "authentication required", "denied")


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


# How messages name the registry of a reference without a host (the engine's default).
DEFAULT_REGISTRY = "Docker Hub"


def pull_reason(explanation: str, registry: str) -> str:
    """The gist of why a pull from registry failed, in one line."""
    text = " ".join(explanation.split())
    # Access is tested first: Docker Hub answers "pull access denied" for a repository that
    # does not exist, and its text then also says "does not exist".
    if any(refused in text for refused in _REFUSED):
        login = "docker login" if registry == DEFAULT_REGISTRY else f"docker login {registry}"
        return f"{registry} refused access: the repository does not exist or needs `{login}`"
    for needle in _UNREACHABLE:
        if needle in text:
            return f"no registry answers at {registry} ({needle})"
    if any(unknown in text for unknown in _UNKNOWN_IMAGE):
        return f"{registry} has no such image or tag"
    return text[:200] or "unknown error"
