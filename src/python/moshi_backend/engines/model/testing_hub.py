"""A local server that speaks the model hub's file protocol, so tests exercise real downloads.

The hub itself is unreachable here; huggingface_hub talks to this server exactly as it talks to
the hub (HEAD/GET .../resolve/REVISION/FILE, POST /api/models/REPO/paths-info/REVISION),
including the gated-repository answers.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class HubRepository:
    repo: str
    directory: Path
    token: str | None = None  # a gated repository answers only requests with this token


@dataclass
class _State:
    repositories: dict[str, HubRepository]
    bytes_per_s: float
    requests: list[str]


def _handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            state.requests.append(f"{self.command} {self.path}")

        def _repository(self, repo: str) -> HubRepository | None:
            repository = state.repositories.get(repo)
            if repository is None:
                self._fail(404, "RepoNotFound", f"Repository {repo} not found")
                return None
            if repository.token is not None:
                auth = self.headers.get("Authorization")
                if auth is None:
                    self._fail(401, "GatedRepo", "Access to this repository is restricted")
                    return None
                if auth != f"Bearer {repository.token}":
                    self._fail(403, "GatedRepo", "You are not in the authorized list")
                    return None
            return repository

        def _fail(self, status: int, code: str, message: str) -> None:
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _resolve(self, body: bool) -> None:
            parts = urllib.parse.urlparse(self.path).path.strip("/").split("/")
            if len(parts) < 5 or parts[2] != "resolve":
                self._fail(404, "EntryNotFound", "bad path")
                return
            repository = self._repository("/".join(parts[:2]))
            if repository is None:
                return
            path = repository.directory / "/".join(parts[4:])
            if not path.is_file():
                self._fail(404, "EntryNotFound", f"{path.name} does not exist")
                return
            data = path.read_bytes()
            self.send_response(200)
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                for start in range(0, len(data), _CHUNK):
                    self.wfile.write(data[start : start + _CHUNK])
                    if state.bytes_per_s:
                        time.sleep(_CHUNK / state.bytes_per_s)

        def do_HEAD(self) -> None:
            self._resolve(body=False)

        def do_GET(self) -> None:
            self._resolve(body=True)

        def do_POST(self) -> None:
            parts = urllib.parse.urlparse(self.path).path.strip("/").split("/")
            if len(parts) < 5 or parts[:2] != ["api", "models"] or parts[4] != "paths-info":
                self._fail(404, "EntryNotFound", "bad path")
                return
            repository = self._repository("/".join(parts[2:4]))
            if repository is None:
                return
            length = int(self.headers.get("Content-Length", "0"))
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            infos = [
                {
                    "type": "file",
                    "path": name,
                    "size": (repository.directory / name).stat().st_size,
                    "oid": COMMIT,
                }
                for name in form.get("paths", [])
                if (repository.directory / name).is_file()
            ]
            payload = json.dumps(infos).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


@contextmanager
def local_hub(
    *repositories: HubRepository, bytes_per_s: float = 0.0
) -> Iterator[tuple[str, list[str]]]:
    """(endpoint URL, request log) of a hub serving the given repositories on loopback."""
    state = _State({r.repo: r for r in repositories}, bytes_per_s, [])
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="local-hub", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state.requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
