"""An image pulled through the SDK's low-level API, its progress streamed into the event hub.

`images.pull` returns only when the pull is over, and a CUDA-capable base is hundreds of MB: a
first `up` that pulled silently looked hung. The low-level stream reports every layer's bytes;
they reach the terminal and the dashboard as the build's output does (in the console of the
resource whose image it is, else the `build` source): a line whenever a layer changes step, a
progress event at most every PROGRESS_INTERVAL_S, and a summary at the end.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import docker
import docker.errors
from docker.utils import parse_repository_tag
from stack_threads.daemon import in_daemon_thread

from orchestrator import events
from orchestrator.containers.docker_errors import DEFAULT_REGISTRY, pull_reason
from orchestrator.containers.pull_progress import PullProgress, megabytes
from orchestrator.errors import OrchestratorError
from orchestrator.events import LogLine, Progress
from orchestrator.hub import EventHub

PROGRESS_INTERVAL_S = 0.5
# The steps of a layer worth a line; the others ("Waiting", "Verifying Checksum") say little.
_LOGGED_STEPS = frozenset({"Downloading", "Download complete", "Pull complete", "Already exists"})


class PullFailed(OrchestratorError):
    """The engine could not pull an image; the message is the reason, in one line."""


def registry_of(image: str) -> str:
    """The registry a reference names, as the Docker engine reads it: the first component when it
    looks like a host (a dot, a port, or localhost), else the engine's default."""
    first, slash, _ = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return DEFAULT_REGISTRY


async def pull_image(
    client: docker.DockerClient,
    hub: EventHub,
    image: str,
    *,
    timeout_s: float,
    resource: str = events.BUILD,
) -> str:
    """Pull image; the summary line it published. PullFailed with the reason in one line."""
    registry = registry_of(image)
    repository, tag = parse_repository_tag(image)
    cancel = threading.Event()

    def messages() -> Iterator[dict[str, Any]]:
        # Without a tag the SDK would pull every tag of the repository.
        stream: Iterator[dict[str, Any]] = client.api.pull(
            repository, tag=tag or "latest", stream=True, decode=True
        )
        return stream

    def run() -> str:
        started = time.monotonic()
        progress = PullProgress()
        published_at = 0.0
        _say(hub, resource, f"pulling {image} from {registry}")
        for message in messages():
            if cancel.is_set():
                raise PullFailed(f"pull of {image} cancelled")
            if "error" in message:
                detail = message.get("errorDetail") or {}
                explanation = str(detail.get("message") or message["error"])
                raise PullFailed(pull_reason(explanation, registry))
            step = progress.update(message)
            if step in _LOGGED_STEPS:
                _say(hub, resource, _layer_line(progress, str(message["id"]), step))
            now = time.monotonic()
            if progress.layers and now - published_at >= PROGRESS_INTERVAL_S:
                published_at = now
                _report(hub, resource, image, progress)
        progress.finish()
        _report(hub, resource, image, progress)
        summary = f"pulled {image}: {progress.summary()} in {time.monotonic() - started:.1f} s"
        _say(hub, resource, summary)
        return summary

    try:
        return await asyncio.wait_for(in_daemon_thread(run, "docker-pull"), timeout_s)
    except TimeoutError:
        raise PullFailed(f"the pull of {image} took over {timeout_s:.0f} s") from None
    except docker.errors.APIError as error:
        raise PullFailed(pull_reason(str(error.explanation or error), registry)) from error
    except (docker.errors.DockerException, OSError) as error:  # requests' errors are OSErrors
        raise PullFailed(pull_reason(str(error), registry)) from error
    finally:
        cancel.set()


def _say(hub: EventHub, resource: str, text: str) -> None:
    hub.publish_threadsafe(LogLine(resource, text))


def _layer_line(progress: PullProgress, layer_id: str, step: str) -> str:
    size = progress.layers[layer_id].size
    if step == "Downloading" and size:
        return f"layer {layer_id}: downloading {megabytes(size)}"
    return f"layer {layer_id}: {step.lower()}"


def _report(hub: EventHub, resource: str, image: str, progress: PullProgress) -> None:
    message = f"pulling {image}: {progress.describe()}"
    hub.publish_threadsafe(Progress(resource, progress.fraction, message))
