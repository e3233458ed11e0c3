"""With MOSHI_USE_SSL the stack runs on one self-signed pair of its own, made (or renewed) before
any service starts: both services serve it, and the frontend's relay and the orchestrator's
probes trust exactly it, never "any certificate"."""

from __future__ import annotations

from orchestrator import events
from orchestrator.containers.confinement import SERVICE_UID
from orchestrator.containers.container_spec import TlsFiles
from orchestrator.containers.service_images import ImageRecipe
from orchestrator.stack.context import StackContext
from stack_tls.certificates import ensure_certificate


def prepare_certificate(stack: StackContext) -> None:
    """The stack's pair, answering for every name a client of this stack uses."""
    if not stack.settings.moshi_use_ssl:
        return
    s = stack.settings
    names = (
        s.publish_host,
        s.app_host,
        # Containers on the project's network reach each other by these.
        stack.container_name(events.BACKEND),
        stack.container_name(events.FRONTEND),
    )
    stack.certificate = ensure_certificate(stack.run_state.certs_dir, *names)


def container_tls(stack: StackContext, recipe: ImageRecipe) -> TlsFiles | None:
    """The pair, as the service's container gets it."""
    if stack.certificate is None:
        return None
    cert, key = stack.certificate
    return TlsFiles(cert, key, recipe.certs_dir, SERVICE_UID)
