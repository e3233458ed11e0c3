from __future__ import annotations

import json
import socket
import ssl
import stat
import subprocess
from pathlib import Path

import pytest

from testsupport.polling import wait_for
from testsupport.processes import (
    free_port,
    process_under_test,
    python_module_command,
    subprocess_env,
)


def _backend(*flags: str) -> list[str]:
    return python_module_command("moshi_backend", *flags)


def test_host_flag_really_binds_that_address() -> None:
    port = free_port("127.0.0.2")
    command = _backend("--engine", "loopback", "--host", "127.0.0.2", "--port", str(port))
    with process_under_test(command) as backend:
        health = json.loads(backend.wait_http(f"http://127.0.0.2:{port}/health"))
        assert health["engine"] == "loopback" and health["status"] == "ready"
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_auto_engine_says_loudly_that_it_is_the_loopback(tmp_path: Path) -> None:
    port = free_port()
    with process_under_test(_backend("--port", str(port)), env={"MOSHI_ENGINE": "auto"}) as backend:
        health = json.loads(backend.wait_http(f"http://127.0.0.1:{port}/health"))
        assert health["engine"] == "loopback" and health["development"] is True
        log = backend.output()
    assert "using the LOOPBACK development engine" in log
    assert "engine LOOPBACK [DEVELOPMENT, no model]" in log


def test_ssl_generates_a_self_signed_pair_and_serves_https(tmp_path: Path) -> None:
    port = free_port()
    certs = tmp_path / "certs"
    command = _backend(
        "--engine", "loopback", "--port", str(port), "--ssl", "--ssl-dir", str(certs)
    )
    with process_under_test(command) as backend:
        unverified = ssl._create_unverified_context()  # the certificate is read after startup
        backend.wait_http(f"https://127.0.0.1:{port}/health", ssl_context=unverified)
        assert stat.S_IMODE((certs / "key.pem").stat().st_mode) == 0o600
        context = ssl.create_default_context(cafile=str(certs / "cert.pem"))
        backend.wait_http(f"https://127.0.0.1:{port}/health", ssl_context=context)


@pytest.mark.parametrize(
    ("flags", "env", "code", "message"),
    [
        (["--port", "0"], {}, 2, "invalid MOSHI_PORT"),
        ([], {"MOSHI_LOOPBACK_DELAY_MS": "-5"}, 2, "invalid MOSHI_LOOPBACK_DELAY_MS"),
        (["--engine", "personaplex"], {}, 1, "no model engines"),
        (["--engine", "gpt"], {}, 2, "invalid choice: 'gpt'"),
        (["--quantize", "int4"], {}, 2, "invalid choice: 'int4'"),
    ],
)
def test_bad_configuration_is_one_clear_error(
    flags: list[str], env: dict[str, str], code: int, message: str
) -> None:
    if "--port" not in flags:
        flags = [*flags, "--port", str(free_port())]
    result = subprocess.run(
        _backend(*flags), capture_output=True, text=True, timeout=60, env=subprocess_env(env)
    )
    assert result.returncode == code, result.stderr
    assert message in result.stderr


def test_access_log_leaves_out_successful_health_polls() -> None:
    port = free_port()
    with process_under_test(_backend("--engine", "loopback", "--port", str(port))) as backend:
        for _ in range(3):
            backend.wait_http(f"http://127.0.0.1:{port}/health")
        backend.wait_http(f"http://127.0.0.1:{port}/api/voices")
        backend.wait_http(f"http://127.0.0.1:{port}/nowhere", expect_status=404)
        wait_for(
            lambda: True if "GET /nowhere" in backend.output() else None,
            what="access log line",
            timeout_s=10,
        )
        log = backend.output()
    assert "GET /api/voices" in log
    assert "GET /health" not in log
