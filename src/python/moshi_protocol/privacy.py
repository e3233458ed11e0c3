"""What no log line may carry: the query of a chat URL holds the persona a user chose (its
text_prompt) and their other settings. Every service and the orchestrator log chat URLs with
the query cut, whoever writes the line (our code, uvicorn, aiohttp)."""

from __future__ import annotations

import logging
import re

CHAT_PATH = "/api/chat"
RELAY_PATH = "/proxy/moshi"
REDACTED = "?(query not logged)"
_CHAT_QUERY = re.compile(rf"({re.escape(CHAT_PATH)}|{re.escape(RELAY_PATH)})\?[^\s\"'<>]*")


def redact_chat_queries(text: str) -> str:
    return _CHAT_QUERY.sub(rf"\1{REDACTED}", text)


class RedactChatQueries(logging.Filter):
    """For handlers: every record that passes has its chat queries cut, in its message, in its
    arguments (uvicorn's access formatter reads the path from the arguments) and in its extra
    attributes (aiohttp's access log adds the request line; OTLP log export sends extras)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_chat_queries(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_chat_queries(value) if isinstance(value, str) else value
                for value in record.args
            )
        for name, value in vars(record).items():
            if isinstance(value, str) and (CHAT_PATH in value or RELAY_PATH in value):
                setattr(record, name, redact_chat_queries(value))
        return True


def redact_logging_handlers(*loggers: logging.Logger) -> None:
    """Put the filter on the handlers of these loggers (the root logger when none is named)."""
    for logger in loggers or (logging.getLogger(),):
        for handler in logger.handlers:
            if not any(isinstance(f, RedactChatQueries) for f in handler.filters):
                handler.addFilter(RedactChatQueries())
