from __future__ import annotations

import io
import logging

from moshi_protocol.privacy import (
    RedactChatQueries,
    redact_chat_queries,
    redact_logging_handlers,
)

CANARY = "canary-persona-0a1b2c"


def test_chat_and_relay_queries_are_cut_and_the_rest_kept() -> None:
    line = (
        f'127.0.0.1:5 - "WebSocket /proxy/moshi?text_prompt={CANARY}&voice_prompt=NATF2.pt" '
        f"[accepted] then GET /api/chat?text_prompt={CANARY} HTTP/1.1 and /health?x=1"
    )
    redacted = redact_chat_queries(line)
    assert CANARY not in redacted and "NATF2" not in redacted
    assert '"WebSocket /proxy/moshi?(query not logged)" [accepted]' in redacted
    assert "GET /api/chat?(query not logged) HTTP/1.1" in redacted
    assert redacted.endswith("/health?x=1")  # other URLs are not the persona


def test_the_filter_cuts_messages_and_arguments_of_any_logger() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactChatQueries())
    logger = logging.getLogger("privacy-test")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        # uvicorn's access log: the path is an argument, read back by its formatter.
        logger.warning(
            '%s - "%s %s HTTP/%s" %d', "1.2.3.4:5", "GET", f"/api/chat?p={CANARY}", "1.1", 101
        )
        logger.warning(f"WebSocket /proxy/moshi?text_prompt={CANARY}")
        # aiohttp's access log: the request line also as an extra attribute of the record.
        extra = {"first_request_line": f"GET /api/chat?p={CANARY} HTTP/1.1"}
        with_extra = logger.makeRecord(
            logger.name, logging.INFO, "f", 1, "line", (), None, extra=extra
        )
        handler.handle(with_extra)
    finally:
        logger.removeHandler(handler)
    assert CANARY not in stream.getvalue()
    assert stream.getvalue().count("(query not logged)") == 2
    assert vars(with_extra)["first_request_line"] == "GET /api/chat?(query not logged) HTTP/1.1"


def test_handlers_are_given_the_filter_once() -> None:
    logger = logging.getLogger("privacy-test-install")
    handler = logging.StreamHandler(io.StringIO())
    logger.addHandler(handler)
    try:
        redact_logging_handlers(logger)
        redact_logging_handlers(logger)
        assert len([f for f in handler.filters if isinstance(f, RedactChatQueries)]) == 1
    finally:
        logger.removeHandler(handler)
