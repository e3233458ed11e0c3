from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from stack_tls.certificates import ensure_certificate, server_ssl_context
from stack_tls.loopback import get_own_health
from testsupport.processes import free_port


@contextmanager
def health_server(status: int, tls: ssl.SSLContext | None = None) -> Iterator[int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # - http.server's naming
            body = b'{"status": "ready"}'
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_a_200_gives_the_body() -> None:
    with health_server(200) as port:
        assert get_own_health(port, cert_file=None) == (
            f"http://127.0.0.1:{port}/health",
            b'{"status": "ready"}',
        )


def test_an_error_status_or_no_server_gives_none_and_says_why(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with health_server(503) as port:
        assert get_own_health(port, cert_file=None)[1] is None
    assert "HTTP 503" in capsys.readouterr().out
    closed = free_port()
    assert get_own_health(closed, cert_file=None, timeout_s=1)[1] is None
    assert "refused" in capsys.readouterr().out.lower()


def test_https_trusts_the_services_own_certificate_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ours, _ = ensure_certificate(tmp_path / "ours")
    other, _ = ensure_certificate(tmp_path / "other")
    with health_server(200, server_ssl_context(tmp_path / "ours")) as port:
        assert get_own_health(port, ours)[1] == b'{"status": "ready"}'
        assert get_own_health(port, other)[1] is None
    assert "CERTIFICATE_VERIFY_FAILED" in capsys.readouterr().out
