"""Real pulls by the Docker engine from a registry on loopback (testsupport.registry), their
progress through the real hub into the terminal printer and the dashboard's feed."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import tarfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import docker
import docker.errors
import pytest

from orchestrator import events
from orchestrator.containers.docker_errors import DEFAULT_REGISTRY, pull_reason
from orchestrator.containers.engine import BaseImageUnavailable, DockerEngine
from orchestrator.containers.image_pull import PullFailed, pull_image, registry_of
from orchestrator.containers.service_images import BACKEND_IMAGE, require_base_image
from orchestrator.dashboard.feed import Feed
from orchestrator.events import Event, LogLine, Progress, ResourceState, StateChanged
from orchestrator.hub import EventHub, StackState
from orchestrator.masking import Masker
from orchestrator.printer import TerminalPrinter
from testsupport.docker_engine import TEST_LABEL
from testsupport.processes import free_port
from testsupport.registry import RegistryImage, saved_image, serving_registry

_PAYLOAD_BYTES = 3_000_000
_TIMEOUT_S = 120.0


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def on_event(self, event: Event, state: StackState) -> None:
        self.events.append(event)

    def progress(self) -> list[Progress]:
        return [event for event in self.events if isinstance(event, Progress)]


@dataclass
class Watched:
    hub: EventHub
    recorder: Recorder
    feed: Feed
    terminal: io.StringIO


@pytest.fixture
async def watched() -> AsyncIterator[Watched]:
    """A running hub with what `up` puts on it: the terminal printer (not on a terminal, as
    under CI) and the dashboard's feed."""
    hub = EventHub()
    recorder, feed, terminal = Recorder(), Feed(Masker([])), io.StringIO()
    hub.subscribe(recorder)
    hub.subscribe(feed)
    printer = TerminalPrinter(Masker([]), terminal)
    hub.attach(printer, "terminal")
    task = asyncio.create_task(hub.run())
    hub.bind()
    try:
        yield Watched(hub, recorder, feed, terminal)
    finally:
        await hub.close_sinks()
        task.cancel()


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def served_image(docker_client: docker.DockerClient) -> RegistryImage:
    """A one-layer image of random bytes (so no earlier pull left its layer on the engine),
    as `docker save` wrote it; the local image it came from is gone again."""
    tag = f"personaplex-pull-source:{uuid.uuid4().hex[:12]}"
    layer = _tar({"payload.bin": os.urandom(_PAYLOAD_BYTES), "hello.txt": b"hello\n"})
    repository, _, version = tag.partition(":")
    docker_client.api.import_image_from_data(
        layer, repository=repository, tag=version, changes=[f"LABEL {TEST_LABEL}=1"]
    )
    try:
        saved = saved_image(docker_client, tag)
    finally:
        docker_client.images.remove(tag, force=True)
    return saved


def _remove(client: docker.DockerClient, image: str) -> None:
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(image, force=True)


async def test_a_pull_streams_layer_and_byte_progress_and_ends_with_the_image(
    docker_client: docker.DockerClient, served_image: RegistryImage, watched: Watched
) -> None:
    async with serving_registry({"personaplex-test/tiny:1": served_image}) as registry:
        image = f"{registry}/personaplex-test/tiny:1"
        try:
            summary = await pull_image(docker_client, watched.hub, image, timeout_s=_TIMEOUT_S)
            pulled = docker_client.images.get(image)
        finally:
            await watched.hub.drain()
            _remove(docker_client, image)
    # The engine has the very image that was saved, byte for byte.
    assert pulled.id == served_image.config_digest
    megabytes = f"{served_image.layer_bytes / 1e6:.1f} MB"
    assert summary.startswith(f"pulled {image}: 1 layer, {megabytes} in ")

    progress = watched.recorder.progress()
    assert progress and all(event.resource == events.BUILD for event in progress)
    assert progress[-1].fraction == 1.0
    assert progress[-1].message == f"pulling {image}: 1 of 1 layers, {megabytes} of {megabytes}"
    lines = [line.text for line in watched.feed.history(events.BUILD)]
    assert lines[0] == f"pulling {image} from {registry}"
    assert any(line.endswith(f": downloading {megabytes}") for line in lines), lines
    assert any(line.endswith(": pull complete") for line in lines), lines
    assert lines[-1] == summary
    terminal = [line.split(" | ", 1) for line in watched.terminal.getvalue().splitlines()]
    finished = f"pulling {image}: 1 of 1 layers, {megabytes} of {megabytes} 100%"
    assert [events.BUILD, finished] in [[prefix.strip(), text] for prefix, text in terminal]
    assert [events.BUILD, summary] in [[prefix.strip(), text] for prefix, text in terminal]


async def test_a_service_base_image_pull_is_the_service_pulling_in_its_own_console(
    docker_client: docker.DockerClient, served_image: RegistryImage, watched: Watched
) -> None:
    """As Aspire shows it: the resource whose base image it is says `pulling`, and the pull's
    lines and progress are in that resource's console, not in a separate source."""
    engine = DockerEngine(docker_client, watched.hub, project="unused")
    async with serving_registry({"personaplex-test/tiny:1": served_image}) as registry:
        image = f"{registry}/personaplex-test/tiny:1"
        try:
            await require_base_image(engine, BACKEND_IMAGE, image)
        finally:
            await watched.hub.drain()
            _remove(docker_client, image)
    first = watched.recorder.events[0]
    assert isinstance(first, StateChanged)
    assert (first.resource, first.state, first.detail) == (
        events.BACKEND,
        ResourceState.PULLING,
        image,
    )
    assert watched.hub.state.view(events.BACKEND).state is ResourceState.PULLING
    lines = [line.text for line in watched.feed.history(events.BACKEND)]
    assert lines[0] == f"pulling {image} from {registry}"
    assert lines[-1].startswith(f"pulled {image}: 1 layer")
    progress = watched.recorder.progress()
    assert progress and {event.resource for event in progress} == {events.BACKEND}
    assert watched.hub.state.view(events.BACKEND).progress == progress[-1]
    logged = [event for event in watched.recorder.events if isinstance(event, LogLine)]
    assert {line.resource for line in logged} == {events.BACKEND}
    assert watched.feed.history(events.BUILD) == []


async def test_a_pull_from_a_closed_port_says_no_registry_answers(
    docker_client: docker.DockerClient, watched: Watched
) -> None:
    registry = f"127.0.0.1:{free_port()}"
    engine = DockerEngine(docker_client, watched.hub, project="unused")
    with pytest.raises(BaseImageUnavailable) as raised:
        await require_base_image(engine, BACKEND_IMAGE, f"{registry}/personaplex-test/none:1")
    message = raised.value.message
    assert f"(no registry answers at {registry} (connection refused))" in message, message
    assert "--moshi-base-image (MOSHI_BASE_IMAGE)" in message and "\n" not in message


async def _failure(client: docker.DockerClient, hub: EventHub, image: str) -> str:
    with pytest.raises(PullFailed) as raised:
        await pull_image(client, hub, image, timeout_s=_TIMEOUT_S)
    return raised.value.message


async def test_an_unknown_tag_says_the_registry_has_no_such_image(
    docker_client: docker.DockerClient, served_image: RegistryImage, watched: Watched
) -> None:
    async with serving_registry({"personaplex-test/tiny:1": served_image}) as registry:
        image = f"{registry}/personaplex-test/tiny:no-such-tag"
        message = await _failure(docker_client, watched.hub, image)
    assert message == f"{registry} has no such image or tag"


async def test_a_registry_that_wants_credentials_says_so(
    docker_client: docker.DockerClient, served_image: RegistryImage, watched: Watched
) -> None:
    images = {"personaplex-test/private:1": served_image}
    async with serving_registry(images, private=["personaplex-test/private"]) as registry:
        image = f"{registry}/personaplex-test/private:1"
        message = await _failure(docker_client, watched.hub, image)
    assert message == (
        f"{registry} refused access: the repository does not exist or needs "
        f"`docker login {registry}`"
    )


def test_messages_name_the_registry_a_reference_pulls_from() -> None:
    assert registry_of("python:3.11-slim-bookworm") == DEFAULT_REGISTRY
    assert registry_of("team/base:1") == DEFAULT_REGISTRY
    assert registry_of("127.0.0.1:5000/base:1") == "127.0.0.1:5000"
    assert registry_of("registry.example/team/base:1") == "registry.example"
    assert registry_of("localhost/base:1") == "localhost"
    # The engine's default needs a plain `docker login`; another registry is named.
    assert pull_reason("pull access denied for base", DEFAULT_REGISTRY).endswith("`docker login`")
    refused = pull_reason("unauthorized: authentication required", "127.0.0.1:5000")
    assert refused.endswith("`docker login 127.0.0.1:5000`")
