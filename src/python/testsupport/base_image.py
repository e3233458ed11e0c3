"""A local Debian base image for service images: no registry is reachable, so one is made here.

debootstrap writes a minimal bookworm root file system with Python 3.11 and libopus, from the
mirror the machine's apt uses (or DEBIAN_MIRROR), and the Docker engine imports it as an image.
Building takes about a minute, so it happens once per engine; concurrent test processes wait for
each other on a file lock.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import docker
from docker.errors import ImageNotFound

from testsupport.apt_sources import APT_DIR, AptSourcesError, mirror_for_suite
from testsupport.docker_engine import TEST_LABEL
from testsupport.environment import TestEnvironment, test_environment
from testsupport.gate import Unavailable

LOCAL_BASE_IMAGE = "personaplex-local-base:bookworm"
_SUITE = "bookworm"
_PACKAGES = ("python3", "ca-certificates", "libopus0")
_LOCK = Path(tempfile.gettempdir()) / "personaplex-local-base.lock"


def _debootstrap() -> str:
    path = shutil.which("debootstrap") or shutil.which("debootstrap", path="/usr/sbin:/sbin")
    if path is None:
        raise Unavailable("debootstrap is not installed (apt-get install debootstrap)")
    return path


def debian_mirror(env: TestEnvironment, apt_dir: Path = APT_DIR) -> str:
    if env.debian_mirror:
        return env.debian_mirror
    try:
        return mirror_for_suite(_SUITE, apt_dir)
    except AptSourcesError as error:
        raise Unavailable(
            f"no Debian mirror for debootstrap: {error} (or set DEBIAN_MIRROR)"
        ) from None


def _build(client: docker.DockerClient, tag: str, env: TestEnvironment) -> None:
    with tempfile.TemporaryDirectory(prefix="personaplex-rootfs-") as work:
        rootfs = Path(work) / "rootfs"
        command = [
            _debootstrap(),
            "--variant=minbase",
            f"--include={','.join(_PACKAGES)}",
            _SUITE,
            str(rootfs),
            debian_mirror(env),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
        if result.returncode != 0:
            tail = "\n".join(result.stdout.splitlines()[-15:] + result.stderr.splitlines()[-15:])
            raise Unavailable(f"debootstrap exited {result.returncode}:\n{tail}")
        archive = Path(work) / "rootfs.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(rootfs, arcname=".")
        repository, _, image_tag = tag.partition(":")
        client.api.import_image_from_file(
            str(archive),
            repository=repository,
            tag=image_tag or "latest",
            changes=[f"LABEL {TEST_LABEL}.base=1", "ENV LANG=C.UTF-8"],
        )


def ensure_local_base_image(
    client: docker.DockerClient, tag: str = LOCAL_BASE_IMAGE, env: TestEnvironment | None = None
) -> str:
    """The tag of a bookworm image with python3 and libopus, built if the engine lacks it."""
    env = env or test_environment()
    with _LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            client.images.get(tag)
        except ImageNotFound:
            _build(client, tag, env)
    return tag
