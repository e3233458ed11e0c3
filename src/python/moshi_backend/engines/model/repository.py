"""Finds a model's files: a local directory, or a model hub repository through the HF cache.

Downloads report files and bytes as they move, and every way a download fails ends in one
message that says what to do.
"""

from __future__ import annotations

import logging
import tarfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi, constants, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
)

from moshi_backend.engines.base import EngineError

log = logging.getLogger(__name__)

_POLL_S = 0.5


@dataclass(frozen=True)
class DownloadProgress:
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int  # 0 when the sizes are unknown (offline, local directory)

    @property
    def fraction(self) -> float:
        if self.bytes_total:
            return min(self.bytes_done / self.bytes_total, 1.0)
        return self.files_done / self.files_total if self.files_total else 1.0


DownloadCallback = Callable[[DownloadProgress], None]


@dataclass(frozen=True)
class FileRequest:
    name: str
    required: bool = True


class ModelRepository:
    """repo is a model hub id (org/name) or a directory that holds the same files."""

    def __init__(
        self,
        repo: str,
        token: str | None = None,
        *,
        offline: bool | None = None,
        endpoint: str | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        # endpoint, cache_dir and offline default to huggingface_hub's own (HF_ENDPOINT,
        # HF_HOME / HF_HUB_CACHE, HF_HUB_OFFLINE).
        self.repo = repo
        self._token = token
        self._local = Path(repo) if Path(repo).is_dir() else None
        self._offline = constants.HF_HUB_OFFLINE if offline is None else offline
        self._endpoint = endpoint
        self._cache_dir = cache_dir if cache_dir is not None else Path(constants.HF_HUB_CACHE)

    def fetch(
        self, files: Sequence[FileRequest], progress: DownloadCallback
    ) -> dict[str, Path | None]:
        """Each requested name mapped to its path (None for an optional file that is absent)."""
        if self._local is not None:
            return self._fetch_local(files, progress)
        sizes = self._sizes([request.name for request in files])
        total = sum(sizes.values())
        found: dict[str, Path | None] = {}
        done_bytes = 0
        for index, request in enumerate(files):
            progress(DownloadProgress(index, len(files), done_bytes, total))

            def in_flight(grown: int, index: int = index, before: int = done_bytes) -> None:
                progress(DownloadProgress(index, len(files), min(before + grown, total), total))

            with _BlobWatcher(self._cache_dir, self.repo, in_flight):
                found[request.name] = self._download(request)
            done_bytes += sizes.get(request.name, 0)
        progress(DownloadProgress(len(files), len(files), total, total))
        return found

    def _fetch_local(
        self, files: Sequence[FileRequest], progress: DownloadCallback
    ) -> dict[str, Path | None]:
        assert self._local is not None
        found: dict[str, Path | None] = {}
        for request in files:
            path = self._local / request.name
            if not path.is_file() and request.required:
                raise EngineError(f"model directory {self._local} has no {request.name}")
            found[request.name] = path if path.is_file() else None
        progress(DownloadProgress(len(files), len(files), 0, 0))
        return found

    def _sizes(self, names: list[str]) -> dict[str, int]:
        if self._offline:
            return {}
        try:
            api = HfApi(endpoint=self._endpoint, token=self._token)
            infos = api.get_paths_info(self.repo, names)
        except (GatedRepoError, RepositoryNotFoundError) as error:
            raise EngineError(self._access_message(error)) from None
        except (HfHubHTTPError, OSError) as error:
            # Sizes only make the progress finer; the download itself reports real failures.
            log.info("file sizes of %s unavailable (%s); progress counts files", self.repo, error)
            return {}
        return {info.path: int(getattr(info, "size", 0) or 0) for info in infos}

    def _download(self, request: FileRequest) -> Path | None:
        try:
            return Path(
                hf_hub_download(
                    self.repo,
                    request.name,
                    token=self._token,
                    local_files_only=self._offline,
                    endpoint=self._endpoint,
                    cache_dir=self._cache_dir,
                )
            )
        except GatedRepoError as error:
            raise EngineError(self._access_message(error)) from None
        except RepositoryNotFoundError as error:
            raise EngineError(self._access_message(error)) from None
        # LocalEntryNotFoundError is an EntryNotFoundError: it must come first.
        except LocalEntryNotFoundError:
            if not request.required:
                return None
            raise EngineError(
                f"{request.name} of {self.repo} is not in the Hugging Face cache "
                f"({self._cache_dir}) and the hub cannot be reached"
                f"{' (HF_HUB_OFFLINE is set)' if self._offline else ''}: download the model "
                "once with network access, mount a cache that holds it, or set MOSHI_HF_REPO "
                "to a directory with its files"
            ) from None
        except EntryNotFoundError:
            if request.required:
                raise EngineError(f"{self.repo} has no file {request.name}") from None
            return None
        except (HfHubHTTPError, OSError) as error:
            raise EngineError(
                f"downloading {request.name} of {self.repo} failed: {error}"
            ) from None

    def _access_message(self, error: Exception) -> str:
        if isinstance(error, GatedRepoError):
            if self._token is None:
                return (
                    f"{self.repo} is a gated repository and no HF_TOKEN is set: accept the "
                    "model's licence on the model hub, then set HF_TOKEN (orchestrator: "
                    "`secrets set HF_TOKEN`)"
                )
            return (
                f"{self.repo} is gated and the HF_TOKEN given has no access to it: accept "
                "the model's licence with the account that owns the token"
            )
        hint = "" if self._token else " (a private repository also needs HF_TOKEN)"
        return f"model repository {self.repo} was not found{hint}"


def unpack_voices(archive: Path) -> Path:
    """voices.tgz extracted beside itself (once); returns the voices directory."""
    target = archive.parent / "voices"
    if target.is_dir():
        return target
    partial = archive.parent / "voices.partial"
    try:
        with tarfile.open(archive, "r:gz") as tar:
            # The data filter refuses absolute paths, parent references and special files.
            tar.extractall(partial, filter="data")
    except (tarfile.TarError, OSError) as error:
        raise EngineError(f"{archive.name} cannot be unpacked: {error}") from None
    inner = partial / "voices"
    (inner if inner.is_dir() else partial).rename(target)
    if partial.exists():
        partial.rmdir()
    return target


class _BlobWatcher:
    """Reports the bytes of a download in flight: huggingface_hub writes blobs/*.incomplete."""

    def __init__(self, cache_dir: Path, repo: str, report: Callable[[int], None]) -> None:
        self._blobs = cache_dir / ("models--" + repo.replace("/", "--")) / "blobs"
        self._report = report
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="download-progress", daemon=True)

    def __enter__(self) -> _BlobWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * _POLL_S)

    def _run(self) -> None:
        while not self._stop.wait(_POLL_S):
            try:
                grown = sum(path.stat().st_size for path in self._blobs.glob("*.incomplete"))
            except OSError:
                continue
            if grown:
                self._report(grown)
