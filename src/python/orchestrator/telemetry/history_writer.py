"""The one thread that writes the current run into the SQLite history, in batches (every
flush_s or flush_rows, whichever comes first), fed by a bounded queue that never blocks."""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from pathlib import Path

from orchestrator.telemetry import history
from orchestrator.telemetry.records import Batch

_STOP = Batch()  # compared by identity


class HistoryWriter:
    def __init__(
        self,
        directory: Path,
        run_id: str,
        *,
        capacity: int = 512,
        flush_rows: int = 500,
        flush_s: float = 0.2,
    ) -> None:
        self._directory = directory
        self._run_id = run_id
        self._queue: queue.Queue[Batch] = queue.Queue(maxsize=capacity)
        self._flush_rows = flush_rows
        self._flush_s = flush_s
        self._thread = threading.Thread(target=self._run, name="telemetry-history", daemon=True)
        # Why the history stopped being written (a full disk, a removed file); None while it is.
        self.failure: str | None = None
        self.lost = 0  # entries accepted by offer() that a failed write lost

    def start(self) -> None:
        self._thread.start()

    def offer(self, batch: Batch) -> bool:
        """False when the batch will not be written (the writer is behind, or has failed)."""
        if self.failure is not None:
            return False
        try:
            self._queue.put_nowait(batch)
        except queue.Full:
            return False
        return True

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, then stop; bounded by timeout_s."""
        if not self._thread.is_alive():
            return
        try:
            self._queue.put(_STOP, timeout=timeout_s)
        except queue.Full:
            self.failure = self.failure or "stopped while still behind"
        self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            connection = history.connect(self._directory)
        except sqlite3.Error as error:
            self.failure = f"cannot open the history: {error}"
            return
        try:
            stopping = False
            while not stopping:
                batches, stopping = self._collect()
                if self.failure is not None:
                    self.lost += sum(len(batch) for batch in batches)
                elif batches:
                    self._write(connection, batches)
        finally:
            connection.close()

    def _collect(self) -> tuple[list[Batch], bool]:
        batches: list[Batch] = []
        rows = 0
        deadline = time.monotonic() + self._flush_s
        while rows < self._flush_rows:
            try:
                batch = self._queue.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                break
            if batch is _STOP:
                return batches, True
            batches.append(batch)
            rows += len(batch)
        return batches, False

    def _write(self, connection: sqlite3.Connection, batches: list[Batch]) -> None:
        try:
            history.insert(
                connection,
                self._run_id,
                [span for batch in batches for span in batch.spans],
                [entry for batch in batches for entry in batch.logs],
                [point for batch in batches for point in batch.points],
            )
        except sqlite3.Error as error:
            self.failure = f"writing the history failed: {error}"
            self.lost += sum(len(batch) for batch in batches)
