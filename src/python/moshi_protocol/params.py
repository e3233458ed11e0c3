"""Query parameters of `/api/chat`, validated the same way whatever engine runs behind them."""

from __future__ import annotations

import re
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from moshi_protocol.messages import ProtocolError

MAX_TEXT_PROMPT_CHARS = 4_000
# PersonaPlex ships these 18 voice prompts (voices.tgz in the model repository).
PERSONAPLEX_VOICES: tuple[str, ...] = tuple(
    [f"NATF{i}.pt" for i in range(4)]
    + [f"NATM{i}.pt" for i in range(4)]
    + [f"VARF{i}.pt" for i in range(5)]
    + [f"VARM{i}.pt" for i in range(5)]
)
DEFAULT_VOICE = "NATF2.pt"
DEFAULT_TEXT_PROMPT = "You are a wise and friendly teacher. Answer questions or provide advice."

# A bare file name: no directories, no parent references, no absolute paths.
_VOICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ChatParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    text_prompt: str = Field(default=DEFAULT_TEXT_PROMPT, max_length=MAX_TEXT_PROMPT_CHARS)
    voice_prompt: str = DEFAULT_VOICE
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    temperature: float = Field(default=0.8, gt=0.0, le=2.0)
    temperature_text: float = Field(default=0.7, gt=0.0, le=2.0)
    top_k: int = Field(default=250, ge=1, le=2048)
    # Of the text tokens (PersonaPlex's text vocabulary has 32000).
    top_k_text: int = Field(default=25, ge=1, le=32000)

    @field_validator("voice_prompt")
    @classmethod
    def _bare_file_name(cls, value: str) -> str:
        if not _VOICE_NAME.match(value) or ".." in value:
            raise ValueError("must be a voice file name such as NATF2.pt, not a path")
        return value

    def query(self) -> dict[str, str]:
        """The parameters as a query string mapping (for clients)."""
        values = self.model_dump(exclude_none=True)
        return {name: str(value) for name, value in values.items()}


def parse_chat_params(query: Mapping[str, str], voices: tuple[str, ...] | None) -> ChatParams:
    """Validate a query string; ProtocolError naming the first bad parameter.

    voices=None checks only the form of voice_prompt (a relay that leaves the list to the server).
    """
    try:
        params = ChatParams.model_validate(dict(query))
    except ValidationError as error:
        problem = error.errors()[0]
        name = ".".join(str(part) for part in problem["loc"]) or "query"
        raise ProtocolError(f"bad {name}: {problem['msg']}") from None
    if voices is not None and params.voice_prompt not in voices:
        raise ProtocolError(
            f"unknown voice_prompt {params.voice_prompt!r}; available: {', '.join(voices)}"
        )
    return params
