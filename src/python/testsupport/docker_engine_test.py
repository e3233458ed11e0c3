from __future__ import annotations

import docker

from testsupport.docker_engine import TEST_LABEL


def test_local_base_image_runs_python_311_with_libopus(
    docker_client: docker.DockerClient, local_base_image: str
) -> None:
    script = (
        "import sys, ctypes.util; "
        "print('%d.%d' % sys.version_info[:2], ctypes.util.find_library('opus'))"
    )
    output = docker_client.containers.run(
        local_base_image,
        ["python3", "-c", script],
        labels={TEST_LABEL: "1"},
        remove=True,
        network_disabled=True,
    )
    assert output.decode().split() == ["3.11", "libopus.so.0"]
