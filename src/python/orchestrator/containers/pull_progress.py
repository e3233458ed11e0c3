"""The Docker engine's pull messages, one per layer and step, folded into one progress.

The engine reports each layer on its own ("Downloading" with bytes, "Extracting" with bytes,
"Pull complete"); a user wants one line: how many layers are done and how many bytes have come.
A layer's total is known only once its download starts, so the fraction counts layers, each
half downloaded and half extracted, rather than bytes: it never jumps back when a new layer's
size becomes known. The engine first names every layer ("Already exists", "Pulling fs layer"),
then transfers: until the first transfer (or the end) the count of layers may still grow, so
there is no fraction yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_WAITING = 0.0
_DOWNLOADED = 0.5
_DONE = 1.0
# Statuses of a layer that has nothing left to do.
_COMPLETE = frozenset({"Pull complete", "Already exists"})
_DOWNLOAD_OVER = frozenset({"Verifying Checksum", "Download complete"})
# What the engine says of each layer while it names them, before any transfer.
_NAMING = frozenset({"Pulling fs layer", "Waiting", "Already exists"})


@dataclass
class LayerState:
    status: str = ""
    # Bytes of the compressed layer: received, and in all (0 while unknown).
    received: int = 0
    size: int = 0
    fraction: float = _WAITING
    reused: bool = False


def megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB"


class PullProgress:
    def __init__(self) -> None:
        self.layers: dict[str, LayerState] = {}
        self._all_named = False

    def update(self, message: Mapping[str, Any]) -> str | None:
        """Take one message of the engine's stream; the layer's new status when it changed
        (for a log line), None for byte counts and for messages about the image as a whole."""
        layer_id = message.get("id")
        status = str(message.get("status", ""))
        detail = message.get("progressDetail") or {}
        current, total = int(detail.get("current") or 0), int(detail.get("total") or 0)
        # Image-wide messages carry the tag as their id ("Pulling from NAME") or none at all.
        if not layer_id or status.startswith("Pulling from"):
            return None
        layer = self.layers.setdefault(str(layer_id), LayerState())
        self._all_named = self._all_named or status not in _NAMING
        if status == "Downloading" and total:
            layer.received, layer.size = current, total
            layer.fraction = _DOWNLOADED * min(current / total, 1.0)
        elif status == "Extracting" and total:
            # The engine counts extraction in compressed bytes read, so total is the size too.
            layer.received = layer.size = max(layer.size, total)
            layer.fraction = _DOWNLOADED + _DOWNLOADED * min(current / total, 1.0)
        elif status in _DOWNLOAD_OVER:
            layer.received = layer.size
            layer.fraction = max(layer.fraction, _DOWNLOADED)
        elif status in _COMPLETE:
            layer.received = layer.size
            layer.fraction = _DONE
            layer.reused = status == "Already exists"
        if status == layer.status:
            return None
        layer.status = status
        return status

    def finish(self) -> None:
        """The stream ended: every layer has been named."""
        self._all_named = True

    @property
    def fraction(self) -> float | None:
        if not self.layers or not self._all_named:
            return None
        return sum(layer.fraction for layer in self.layers.values()) / len(self.layers)

    @property
    def received(self) -> int:
        return sum(layer.received for layer in self.layers.values() if not layer.reused)

    @property
    def size(self) -> int:
        """Bytes to download in all, as far as the engine has told."""
        return sum(layer.size for layer in self.layers.values() if not layer.reused)

    def describe(self) -> str:
        """E.g. `2 of 5 layers, 12.3 MB of 45.6 MB`."""
        done = sum(1 for layer in self.layers.values() if layer.fraction >= _DONE)
        text = f"{done} of {len(self.layers)} layers"
        if self.size:
            text += f", {megabytes(self.received)} of {megabytes(self.size)}"
        return text

    def summary(self) -> str:
        """What the pull moved, once it is over: e.g. `5 layers (1 already present), 45.6 MB`."""
        reused = sum(1 for layer in self.layers.values() if layer.reused)
        count = len(self.layers)
        text = f"{count} layer" if count == 1 else f"{count} layers"
        if reused:
            text += f" ({reused} already present)"
        return f"{text}, {megabytes(self.size)}"
