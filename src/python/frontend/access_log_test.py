from __future__ import annotations

import logging

from frontend.access_log import QuietPolls


def _record(path: str, status: int) -> logging.LogRecord:
    return logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", path, "1.1", status),
        None,
    )


def test_successful_health_polls_are_dropped_and_everything_else_kept() -> None:
    quiet = QuietPolls()
    assert not quiet.filter(_record("/health", 200))
    assert quiet.filter(_record("/health", 503))
    assert quiet.filter(_record("/api/config", 200))
    assert quiet.filter(logging.LogRecord("x", logging.INFO, __file__, 1, "plain", None, None))
