"""An image built through the SDK's low-level API, its output streamed into the event hub.

The SDK has no BuildKit, and `images.build` returns only when the build is over: the low-level
stream is what lets a user watch a build that takes minutes.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import docker
import docker.errors
from stack_threads.daemon import in_daemon_thread

from orchestrator import events
from orchestrator.errors import OrchestratorError
from orchestrator.events import LogLine, Progress
from orchestrator.hub import EventHub

_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
# The classic builder's bookkeeping, which says nothing a reader needs.
_BUILD_NOISE = (" ---> ", "Removing intermediate container")
_TAIL_LINES = 30


async def build_image(
    client: docker.DockerClient,
    hub: EventHub,
    context: Path,
    *,
    dockerfile: str,
    tag: str,
    buildargs: Mapping[str, str],
    labels: Mapping[str, str],
    timeout_s: float,
    resource: str = events.BUILD,
) -> str:
    """The id of the image built from context; OrchestratorError with the build's last lines.
    Its output goes to resource's console (the service whose image it is, as Aspire shows it)."""
    cancel = threading.Event()
    tail: list[str] = []

    def chunks() -> Iterator[dict[str, Any]]:
        stream: Iterator[dict[str, Any]] = client.api.build(
            path=str(context),
            dockerfile=dockerfile,
            tag=tag,
            buildargs=dict(buildargs),
            labels=dict(labels),
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
            # Per read: a quiet build step (unpacking the PEX) may take minutes.
            timeout=int(timeout_s),
        )
        return stream

    def run() -> str:
        image_id: str | None = None
        for chunk in chunks():
            if cancel.is_set():
                raise OrchestratorError("image build cancelled")
            for line in str(chunk.get("stream", "")).splitlines():
                if line.strip():
                    tail.append(line)
                    del tail[:-_TAIL_LINES]
                    _publish_line(hub, resource, line)
            aux = chunk.get("aux")
            if isinstance(aux, dict) and "ID" in aux:
                image_id = str(aux["ID"])
            if "error" in chunk:
                raise OrchestratorError(
                    f"image build of {tag} failed: {str(chunk['error']).strip()}",
                    details="\n".join(tail),
                )
        return image_id or str(client.images.get(tag).id)

    try:
        return await asyncio.wait_for(in_daemon_thread(run, "docker-build"), timeout_s)
    except TimeoutError:
        raise OrchestratorError(f"image build of {tag} took over {timeout_s:.0f} s") from None
    except docker.errors.DockerException as error:
        raise OrchestratorError(f"image build of {tag} failed: {error}") from error
    finally:
        cancel.set()


def _publish_line(hub: EventHub, resource: str, line: str) -> None:
    """From the build's thread: the line (unless noise) and, on a new step, the progress."""
    if not line.startswith(_BUILD_NOISE):
        hub.publish_threadsafe(LogLine(resource, line))
    step = _STEP.match(line)
    if step:
        done, total = int(step.group(1)), int(step.group(2))
        message = f"image step {done}/{total}: {step.group(3)[:60]}"
        hub.publish_threadsafe(Progress(resource, (done - 1) / total, message))
