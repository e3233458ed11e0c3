"""The one domain exception: what went wrong, in words a user can act on."""

from __future__ import annotations


class OrchestratorError(Exception):
    """A failure the CLI turns into `orchestrator: MESSAGE` (plus details) and an exit code."""

    def __init__(self, message: str, *, details: str = "", exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        # Extra lines for the user, e.g. the last log lines of a service that died.
        self.details = details
        self.exit_code = exit_code


class ServiceFailed(OrchestratorError):
    """A service exited, reported an error or never became healthy."""
