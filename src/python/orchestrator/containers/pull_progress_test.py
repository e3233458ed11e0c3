from __future__ import annotations

from orchestrator.containers.pull_progress import PullProgress


def _bytes(status: str, layer: str, current: int, total: int) -> dict[str, object]:
    return {"status": status, "id": layer, "progressDetail": {"current": current, "total": total}}


# The engine's stream for a two-layer image whose first layer the engine already has (the
# order and wording of Docker 20.10's messages).
_STREAM: list[dict[str, object]] = [
    {"status": "Pulling from library/python", "id": "3.11-slim-bookworm"},
    {"status": "Already exists", "id": "aaa", "progressDetail": {}},
    {"status": "Pulling fs layer", "id": "bbb", "progressDetail": {}},
    {"status": "Waiting", "id": "bbb", "progressDetail": {}},
    _bytes("Downloading", "bbb", 1_000_000, 4_000_000),
    _bytes("Downloading", "bbb", 4_000_000, 4_000_000),
    {"status": "Verifying Checksum", "id": "bbb", "progressDetail": {}},
    {"status": "Download complete", "id": "bbb", "progressDetail": {}},
    _bytes("Extracting", "bbb", 2_000_000, 4_000_000),
    {"status": "Pull complete", "id": "bbb", "progressDetail": {}},
    {"status": "Digest: sha256:0123"},
    {"status": "Status: Downloaded newer image for python:3.11-slim-bookworm"},
]


def test_layers_fold_into_one_fraction_that_only_grows() -> None:
    progress = PullProgress()
    fractions, descriptions = [], []
    for message in _STREAM:
        progress.update(message)
        fractions.append(progress.fraction)
        descriptions.append(progress.describe())
    progress.finish()
    # None while the engine names the layers (a layer named later would lower it), then it
    # only grows.
    grown = [fraction for fraction in fractions[4:] if fraction is not None]
    assert fractions[:4] == [None] * 4 and len(grown) == len(fractions) - 4
    assert grown == sorted(grown) and progress.fraction == 1.0
    # The second layer a quarter downloaded: half of a half, beside a layer already there.
    assert fractions[4] == (1.0 + 0.125) / 2
    assert descriptions[4] == "1 of 2 layers, 1.0 MB of 4.0 MB"
    assert descriptions[8] == "1 of 2 layers, 4.0 MB of 4.0 MB"
    assert progress.describe() == "2 of 2 layers, 4.0 MB of 4.0 MB"
    assert progress.summary() == "2 layers (1 already present), 4.0 MB"


def test_an_image_whose_layers_all_exist_is_done_at_the_end() -> None:
    progress = PullProgress()
    progress.update({"status": "Already exists", "id": "aaa", "progressDetail": {}})
    assert progress.fraction is None  # more layers may follow
    progress.finish()
    assert progress.fraction == 1.0 and progress.summary() == "1 layer (1 already present), 0.0 MB"


def test_a_status_is_reported_once_when_it_changes_and_bytes_never() -> None:
    progress = PullProgress()
    changes = [progress.update(message) for message in _STREAM]
    assert changes == [
        None,
        "Already exists",
        "Pulling fs layer",
        "Waiting",
        "Downloading",
        None,
        "Verifying Checksum",
        "Download complete",
        "Extracting",
        "Pull complete",
        None,
        None,
    ]
