"""The model engine on a tiny checkpoint written by the test, through the same loading code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from moshi_backend.engines.base import EngineError, EngineSession
from moshi_backend.engines.model import prompts
from moshi_backend.engines.model.model_engine import ModelEngine
from moshi_backend.engines.model.testing_checkpoints import (
    TINY_VOICE,
    cpu_engine,
    ignore_progress,
    record_voice,
    voice_audio,
    write_tiny_repository,
)
from moshi_protocol.messages import FRAME_SAMPLES
from moshi_protocol.opus import Pcm
from moshi_protocol.params import ChatParams


class PromptLog:
    def __init__(self) -> None:
        self.steps: list[tuple[prompts.Phase, int, tuple[int, ...], tuple[int, ...]]] = []

    def __call__(
        self, phase: prompts.Phase, text: int, own: tuple[int, ...], user: tuple[int, ...]
    ) -> None:
        self.steps.append((phase, text, own, user))


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_repository(tmp_path_factory.mktemp("model") / "personaplex-tiny")


@pytest.fixture(scope="module")
def prompt_log() -> PromptLog:
    return PromptLog()


@pytest.fixture(scope="module")
def engine(repository: Path, prompt_log: PromptLog) -> Iterator[ModelEngine]:
    engine = cpu_engine(repository, observer=prompt_log)
    engine.load(ignore_progress)
    yield engine
    engine.close()


def open_session(engine: ModelEngine, params: ChatParams) -> EngineSession:
    """A session whose persona prompt has run."""
    session = engine.start_session(params)
    try:
        session.ready.result(timeout=120)
    except BaseException:
        session.close()
        raise
    return session


def speech_like(frames: int) -> Iterator[Pcm]:
    pcm = voice_audio(seconds=frames * FRAME_SAMPLES / 24000 + 0.1, pitch_hz=140.0)
    for index in range(frames):
        yield pcm[index * FRAME_SAMPLES : (index + 1) * FRAME_SAMPLES]


def converse(engine: ModelEngine, params: ChatParams, frames: int = 10) -> tuple[Pcm, str]:
    session = open_session(engine, params)
    try:
        results = [session.step(frame) for frame in speech_like(frames)]
    finally:
        session.close()
    audio = np.concatenate([r.pcm for r in results])
    return audio, "".join(piece for r in results for piece in r.text)


def test_load_reports_stages_and_layers(repository: Path) -> None:
    seen: list[tuple[float, str, dict[str, int]]] = []
    engine = cpu_engine(repository)
    engine.load(
        lambda fraction, stage="", detail=None: seen.append((fraction, stage, dict(detail or {})))
    )
    fractions = [fraction for fraction, _, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    stages = [stage for _, stage, _ in seen]
    assert stages.index("downloading") < stages.index("loading LM") < stages.index("warming up")
    layers = [detail["layers_loaded"] for _, stage, detail in seen if stage == "loading LM"]
    assert layers == [0, 1, 2]
    assert engine.info.voices == (TINY_VOICE,)
    assert engine.info.capacity == 1 and not engine.info.development
    assert "dep_q 16" in engine.info.model
    engine.close()


def test_persona_prompts_run_in_order_before_the_session_starts(
    engine: ModelEngine, prompt_log: PromptLog
) -> None:
    prompt_log.steps.clear()
    params = ChatParams(text_prompt="You are Jane, a teacher.", voice_prompt=TINY_VOICE, seed=1)
    open_session(engine, params).close()
    phases = [step[0] for step in prompt_log.steps]
    runs: list[tuple[prompts.Phase, int]] = []
    for phase in phases:
        if runs and runs[-1][0] is phase:
            runs[-1] = (phase, runs[-1][1] + 1)
        else:
            runs.append((phase, 1))
    voice_frames = -(-int(1.5 * 24000) // FRAME_SAMPLES)  # the tiny voice lasts 1.5 s
    text_tokens = engine.loaded.tokenizer.Encode("<system> You are Jane, a teacher. <system>")
    assert runs == [
        (prompts.Phase.VOICE, voice_frames),
        (prompts.Phase.SILENCE, 6),
        (prompts.Phase.TEXT, len(text_tokens)),
        (prompts.Phase.SILENCE, 6),
    ]
    pad = engine.loaded.lm.text_padding_token_id
    for phase, text, own, user in prompt_log.steps:
        assert user == prompts.SINE_TOKENS
        if phase is prompts.Phase.VOICE:
            assert text == pad and own != prompts.SILENCE_TOKENS  # Mimi tokens of the voice
        elif phase is prompts.Phase.SILENCE:
            assert text == pad and own == prompts.SILENCE_TOKENS
        else:
            assert own == prompts.SILENCE_TOKENS
    assert [text for phase, text, _, _ in prompt_log.steps if phase is prompts.Phase.TEXT] == list(
        text_tokens
    )


def test_steps_give_audio_frames_and_text(engine: ModelEngine) -> None:
    audio, text = converse(engine, ChatParams(voice_prompt=TINY_VOICE, seed=5), frames=12)
    # The persona prompts have filled the delays: every frame yields one at once.
    assert audio.dtype == np.float32 and audio.size == 12 * FRAME_SAMPLES
    assert np.isfinite(audio).all() and float(np.abs(audio).max()) > 0
    assert text  # random weights talk nonsense, but they talk


def test_same_seed_same_conversation_and_each_parameter_changes_it(engine: ModelEngine) -> None:
    base = ChatParams(voice_prompt=TINY_VOICE, seed=11)
    audio, text = converse(engine, base)
    again_audio, again_text = converse(engine, base)
    assert np.array_equal(audio, again_audio) and text == again_text
    for change in (
        {"seed": 12},
        {"temperature": 0.2},
        {"top_k": 3},
    ):
        other, _ = converse(engine, base.model_copy(update=change))
        assert not np.array_equal(audio, other), change
    _, other_text = converse(engine, base.model_copy(update={"temperature_text": 0.05}))
    assert other_text != text


def test_stored_voice_replays_exactly_like_its_audio(engine: ModelEngine, tmp_path: Path) -> None:
    voice_dir = engine.loaded.voice_dir
    assert voice_dir is not None
    stored = voice_dir / "TINYF0.pt"
    record_voice(engine, voice_dir / TINY_VOICE, stored)
    try:
        from_audio = converse(engine, ChatParams(voice_prompt=TINY_VOICE, seed=4))
        from_stored = converse(engine, ChatParams(voice_prompt="TINYF0.pt", seed=4))
    finally:
        stored.unlink()
    assert np.array_equal(from_audio[0], from_stored[0]) and from_audio[1] == from_stored[1]


def test_an_empty_text_prompt_starts_a_conversation(engine: ModelEngine) -> None:
    audio, _ = converse(engine, ChatParams(text_prompt="", voice_prompt=TINY_VOICE, seed=3), 2)
    assert audio.size == 2 * FRAME_SAMPLES and np.isfinite(audio).all()


def test_one_conversation_per_slot_and_a_closed_one_frees_it_at_once(engine: ModelEngine) -> None:
    session = engine.start_session(ChatParams(voice_prompt=TINY_VOICE))
    try:
        with pytest.raises(EngineError, match="busy: 1 of 1 conversation slots are in use"):
            engine.start_session(ChatParams(voice_prompt=TINY_VOICE))
    finally:
        session.close()  # during its persona prompt
    with pytest.raises(EngineError):
        session.ready.result(timeout=60)
    open_session(engine, ChatParams(voice_prompt=TINY_VOICE)).close()


def test_unknown_and_broken_voices(engine: ModelEngine) -> None:
    voice_dir = engine.loaded.voice_dir
    assert voice_dir is not None
    with pytest.raises(EngineError, match="not in voices/"):
        engine.start_session(ChatParams(voice_prompt="NOPE.wav"))
    broken = voice_dir / "BROKEN.pt"
    broken.write_bytes(b"not a torch file")
    try:
        with pytest.raises(EngineError, match="BROKEN.pt cannot be read"):
            engine.start_session(ChatParams(voice_prompt="BROKEN.pt"))
    finally:
        broken.unlink()
    # A failed start leaves the engine free for the next conversation.
    open_session(engine, ChatParams(voice_prompt=TINY_VOICE)).close()


def test_moshi_engine_has_no_persona_prompts(tmp_path: Path) -> None:
    repository = write_tiny_repository(tmp_path / "moshi-tiny", dep_q=8)
    log = PromptLog()
    engine = cpu_engine(repository, persona=False, observer=log)
    engine.load(ignore_progress)
    assert engine.info.voices == ()
    try:
        audio, _ = converse(engine, ChatParams(seed=2), frames=6)
    finally:
        engine.close()
    # Without prompts the first frame only starts the stream and the second fills the delays.
    assert log.steps == [] and audio.size == 4 * FRAME_SAMPLES
