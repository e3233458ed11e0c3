"""Getting weights: hub downloads, the cache, and every error a user can hit."""

from __future__ import annotations

import json
import shutil
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import torch

from moshi_backend.engines.base import EngineError
from moshi_backend.engines.model.architecture import (
    CONFIG,
    LM_WEIGHTS,
    PERSONAPLEX_7B_LM,
    TEXT_TOKENIZER,
    Architecture,
)
from moshi_backend.engines.model.devices import check_memory, resolve_device
from moshi_backend.engines.model.model_engine import ModelEngine
from moshi_backend.engines.model.offload import plan_layers
from moshi_backend.engines.model.testing_checkpoints import cpu_engine, write_tiny_repository
from moshi_backend.engines.model.testing_hub import HubRepository, local_hub
from moshi_backend.engines.model.weights import lm_parameter_bytes
from testsupport.processes import free_port, process_under_test, python_module_command

REPO = "nvidia/personaplex-7b-v1"
GIB = 1024**3


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_repository(tmp_path_factory.mktemp("tiny") / "repo")


def engine_for(repo: str, **config: Any) -> ModelEngine:
    return cpu_engine(repo, **config)


def load(engine: ModelEngine) -> list[tuple[float, str, dict[str, int]]]:
    seen: list[tuple[float, str, dict[str, int]]] = []
    engine.load(lambda f, stage="", detail=None: seen.append((f, stage, dict(detail or {}))))
    return seen


def test_gated_download_with_token_shows_bytes_then_loads_offline_from_cache(
    tiny: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "hub-cache"
    # Slow enough that the progress watcher sees the model file arrive in pieces.
    with local_hub(HubRepository(REPO, tiny, token="hf_canary"), bytes_per_s=6e6) as (url, log):
        seen = load(engine_for(REPO, hf_token="hf_canary", hub_endpoint=url, hub_cache=cache))
    downloads = [detail for _, stage, detail in seen if stage == "downloading" and detail]
    total = sum(p.stat().st_size for p in tiny.iterdir() if p.name != CONFIG)
    assert downloads[-1]["bytes_total"] == total and downloads[-1]["bytes_done"] == total
    partial = {d["bytes_done"] for d in downloads if 0 < d["bytes_done"] < total}
    assert len(partial) >= 2, downloads
    fractions = [fraction for fraction, _, _ in seen]
    assert fractions == sorted(fractions)
    assert any(line.startswith("GET") and LM_WEIGHTS in line for line in log)
    # Second start: the hub is gone, the cache has everything.
    engine = engine_for(REPO, hub_cache=cache, offline=True)
    load(engine)
    assert engine.info.voices == ("TINYF0.wav",)


def test_gated_repository_without_or_with_a_wrong_token(tiny: Path, tmp_path: Path) -> None:
    with local_hub(HubRepository(REPO, tiny, token="hf_right")) as (url, _):
        with pytest.raises(EngineError, match="gated repository and no HF_TOKEN is set"):
            load(engine_for(REPO, hub_endpoint=url, hub_cache=tmp_path))
        with pytest.raises(EngineError, match="HF_TOKEN given has no access"):
            load(engine_for(REPO, hf_token="hf_wrong", hub_endpoint=url, hub_cache=tmp_path))


def test_unknown_repository(tmp_path: Path) -> None:
    with local_hub() as (url, _), pytest.raises(EngineError, match="nvidia/nope was not found"):
        load(engine_for("nvidia/nope", hub_endpoint=url, hub_cache=tmp_path))


def test_weights_missing_offline(tmp_path: Path) -> None:
    with pytest.raises(
        EngineError, match=r"not in the Hugging Face cache .*\(HF_HUB_OFFLINE is set\)"
    ):
        load(engine_for(REPO, hub_cache=tmp_path / "empty", offline=True))


def test_checkpoint_shapes_that_do_not_match_the_configuration(tmp_path: Path) -> None:
    repository = write_tiny_repository(tmp_path / "wide", lm_overrides={"dim": 48})
    with pytest.raises(EngineError, match=r"has shape \(.*48.*\) but the configuration .*dim 32"):
        load(engine_for(str(repository)))


def test_checkpoint_in_the_older_layout_with_an_8_step_depformer(tmp_path: Path) -> None:
    repository = write_tiny_repository(tmp_path / "legacy", legacy_layout=True)
    engine = engine_for(str(repository))
    load(engine)
    state = engine.loaded.lm.state_dict()
    step = "depformer.layers.0.self_attn.in_projs.{}.weight"
    assert torch.equal(state[step.format(11)], state[step.format(3)])
    assert torch.equal(state["linears.15.weight"], state["linears.7.weight"])
    assert not torch.equal(state[step.format(1)], state[step.format(0)])


def test_damaged_and_missing_files(tiny: Path, tmp_path: Path) -> None:
    damaged = shutil.copytree(tiny, tmp_path / "damaged")
    (damaged / LM_WEIGHTS).write_bytes(b"\x00" * 64)
    with pytest.raises(EngineError, match="model.safetensors is not a readable safetensors file"):
        load(engine_for(str(damaged)))
    (damaged / TEXT_TOKENIZER).unlink()
    with pytest.raises(EngineError, match=f"has no {TEXT_TOKENIZER}"):
        load(engine_for(str(damaged)))


def test_tokenizer_larger_than_the_text_vocabulary(tiny: Path, tmp_path: Path) -> None:
    narrow = shutil.copytree(tiny, tmp_path / "narrow")
    config = json.loads((narrow / CONFIG).read_text())
    (narrow / CONFIG).write_text(json.dumps({**config, "text_card": 16}))
    with pytest.raises(EngineError, match="64 pieces but the LM's text card is 16"):
        load(engine_for(str(narrow)))


def test_not_enough_gpu_memory_for_personaplex_7b() -> None:
    weights = lm_parameter_bytes(Architecture(lm=PERSONAPLEX_7B_LM), torch.bfloat16)
    assert 14 * GIB < weights < 19 * GIB  # what 7B parameters in bf16 take
    device = torch.device("cuda", 0)
    with pytest.raises(EngineError, match=r"needs about 1\d\.\d GiB, 12\.0 GiB are free.*OFFLOAD"):
        check_memory(weights, device, cpu_offload=False, free_bytes=12 * GIB, device_name="L4")
    check_memory(weights, device, cpu_offload=True, free_bytes=12 * GIB, device_name="L4")
    check_memory(weights, device, cpu_offload=False, free_bytes=40 * GIB, device_name="L40S")


def test_offload_keeps_leading_layers_that_fit() -> None:
    assert plan_layers([4, 4, 4, 4], budget=9) == 2
    assert plan_layers([4, 4], budget=100) == 2
    assert plan_layers([4, 4], budget=3) == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_cuda_requested_without_a_gpu() -> None:
    with pytest.raises(EngineError, match="MOSHI_DEVICE=cuda but torch sees no CUDA device"):
        resolve_device("cuda")


def _health(port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            body = response.read()
    except urllib.error.HTTPError as error:  # 503 while loading, with the same document
        body = error.read()
    document: dict[str, Any] = json.loads(body)
    return document


def test_sigterm_during_a_download_ends_the_backend_at_once(tiny: Path, tmp_path: Path) -> None:
    port = free_port()
    command = python_module_command(
        "moshi_backend", "--engine", "personaplex", "--device", "cpu", "--port", str(port)
    )
    # Slow enough that the weights take minutes to arrive.
    with local_hub(HubRepository(REPO, tiny), bytes_per_s=20e3) as (url, _):
        env = {"MOSHI_HF_REPO": REPO, "HF_ENDPOINT": url, "HF_HOME": str(tmp_path / "hf")}
        with process_under_test(command, env=env) as backend:
            backend.wait_http(f"http://127.0.0.1:{port}/health", expect_status=503)
            deadline = time.monotonic() + 120
            while _health(port)["load"].get("bytes_done", 0) == 0:
                assert time.monotonic() < deadline, backend.output()
                time.sleep(0.2)
            assert _health(port)["stage"] == "downloading"
            stopping = time.monotonic()
            backend.process.send_signal(signal.SIGTERM)
            code = backend.wait_exit(timeout_s=30)
            took = time.monotonic() - stopping
    assert code == 0, backend.output()
    assert took < 10, f"{took:.1f} s after SIGTERM"
