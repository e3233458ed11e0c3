from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stack_tls.loopback import get_own_health
from testsupport.processes import free_port


@contextmanager
def health_server(status: int) -> Iterator[int]:
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
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_a_200_gives_the_body() -> None:
    with health_server(200) as port:
        assert get_own_health(port, use_ssl=False) == (
            f"http://127.0.0.1:{port}/health",
            b'{"status": "ready"}',
        )


def test_an_error_status_or_no_server_gives_none_and_says_why(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with health_server(503) as port:
        assert get_own_health(port, use_ssl=False)[1] is None
    assert "HTTP 503" in capsys.readouterr().out
    closed = free_port()
    assert get_own_health(closed, use_ssl=False, timeout_s=1)[1] is None
    assert "refused" in capsys.readouterr().out.lower()
