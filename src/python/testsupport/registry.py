"""A minimal Docker registry (HTTP API v2, pull only) on loopback, for tests of real pulls.

No registry is reachable from the test machines, yet the Docker engine pulls from one on
127.0.0.0/8 over plain HTTP (those addresses are insecure registries by default). What it serves
is made here from `docker save` of a local image: the engine's own image config, and each layer
gzipped, under a schema 2 manifest. A repository listed as private answers 401, as a registry
does to a pull without credentials.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import docker
from aiohttp import web

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
_CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
_LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _descriptor(media_type: str, data: bytes) -> dict[str, object]:
    return {"mediaType": media_type, "size": len(data), "digest": _digest(data)}


@dataclass(frozen=True)
class RegistryImage:
    """One image as a registry holds it: a manifest and the blobs it names."""

    manifest: bytes
    blobs: Mapping[str, bytes]

    @property
    def config_digest(self) -> str:
        """The image's id once an engine has pulled it."""
        return str(json.loads(self.manifest)["config"]["digest"])

    @property
    def layer_bytes(self) -> int:
        return sum(int(layer["size"]) for layer in json.loads(self.manifest)["layers"])


def saved_image(client: docker.DockerClient, image: str) -> RegistryImage:
    """image, as the engine's `docker save` writes it, turned into registry blobs."""
    archive = io.BytesIO(b"".join(client.images.get(image).save()))
    with tarfile.open(fileobj=archive) as tar:

        def member(name: str) -> bytes:
            extracted = tar.extractfile(name)
            assert extracted is not None, f"{name} missing from the saved image"
            return extracted.read()

        (entry,) = json.loads(member("manifest.json"))
        config = member(entry["Config"])
        # mtime=0: the same layer always gives the same blob.
        layers = [gzip.compress(member(path), mtime=0) for path in entry["Layers"]]
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": _descriptor(_CONFIG_TYPE, config),
        "layers": [_descriptor(_LAYER_TYPE, layer) for layer in layers],
    }
    blobs = {_digest(blob): blob for blob in (config, *layers)}
    return RegistryImage(json.dumps(manifest).encode(), blobs)


def _error(status: int, code: str, message: str) -> web.Response:
    body = {"errors": [{"code": code, "message": message}]}
    return web.json_response(body, status=status)


class _Registry:
    def __init__(self, images: Mapping[str, RegistryImage], private: Collection[str]) -> None:
        # "name:tag" and "name:digest" (the engine asks by tag, then by the digest it was
        # told) -> image; and every blob of every image by digest.
        self._images = dict(images)
        for reference, image in images.items():
            name = reference.rpartition(":")[0]
            self._images[f"{name}:{_digest(image.manifest)}"] = image
        self._blobs = {
            digest: blob for image in images.values() for digest, blob in image.blobs.items()
        }
        self._private = frozenset(private)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v2/", self.base)
        # HEAD is served by the GET routes (aiohttp answers it with the headers alone).
        app.router.add_get(r"/v2/{name:.+}/manifests/{reference}", self.manifest)
        app.router.add_get(r"/v2/{name:.+}/blobs/{digest}", self.blob)
        return app

    async def base(self, request: web.Request) -> web.Response:
        return web.json_response({})

    def _refused(self, name: str) -> web.Response | None:
        if name not in self._private:
            return None
        response = _error(401, "UNAUTHORIZED", "authentication required")
        response.headers["WWW-Authenticate"] = 'Basic realm="test registry"'
        return response

    async def manifest(self, request: web.Request) -> web.Response:
        name, reference = request.match_info["name"], request.match_info["reference"]
        refused = self._refused(name)
        if refused is not None:
            return refused
        image = self._images.get(f"{name}:{reference}")
        if image is None:
            return _error(404, "MANIFEST_UNKNOWN", "manifest unknown")
        headers = {"Docker-Content-Digest": _digest(image.manifest)}
        return web.Response(body=image.manifest, content_type=MANIFEST_TYPE, headers=headers)

    async def blob(self, request: web.Request) -> web.Response:
        name, digest = request.match_info["name"], request.match_info["digest"]
        refused = self._refused(name)
        if refused is not None:
            return refused
        blob = self._blobs.get(digest)
        if blob is None:
            return _error(404, "BLOB_UNKNOWN", "blob unknown to registry")
        headers = {"Docker-Content-Digest": digest}
        return web.Response(body=blob, content_type="application/octet-stream", headers=headers)


@asynccontextmanager
async def serving_registry(
    images: Mapping[str, RegistryImage], *, private: Collection[str] = ()
) -> AsyncIterator[str]:
    """A registry serving images ({"name:tag": image}) on the running loop; yields its address,
    `127.0.0.1:PORT`, which prefixes the names an engine pulls from it."""
    runner = web.AppRunner(_Registry(images, private).app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        yield f"{host}:{port}"
    finally:
        await runner.cleanup()
