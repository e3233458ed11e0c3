from __future__ import annotations

import json
import ssl
import subprocess
from pathlib import Path

from testsupport.processes import (
    free_port,
    process_under_test,
    python_module_command,
    subprocess_env,
)


def test_ssl_serves_https_and_sends_browsers_through_the_proxy(tmp_path: Path) -> None:
    port = free_port()
    env = {
        "APP_PORT": str(port),
        "MOSHI_USE_SSL": "true",
        "APP_SSL_DIR": str(tmp_path / "certs"),
        "MOSHI_HOST": "127.0.0.1",
        "MOSHI_PORT": str(free_port()),
    }
    with process_under_test(python_module_command("frontend"), env) as frontend:
        unverified = ssl._create_unverified_context()  # the pair is made at startup
        frontend.wait_http(f"https://127.0.0.1:{port}/health", ssl_context=unverified)
        trusted = ssl.create_default_context(cafile=str(tmp_path / "certs" / "cert.pem"))
        config = json.loads(
            frontend.wait_http(f"https://127.0.0.1:{port}/api/config", ssl_context=trusted)
        )
    assert config["use_proxy"] is True
    assert config["moshi_ws_url"].startswith("wss://127.0.0.1:")


def test_bad_environment_is_one_clear_error() -> None:
    result = subprocess.run(
        python_module_command("frontend"),
        capture_output=True,
        text=True,
        timeout=60,
        env=subprocess_env({"APP_PORT": "http"}),
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("frontend: invalid APP_PORT: Input should be")
