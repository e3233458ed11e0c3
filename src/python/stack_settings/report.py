"""How every service says which of its settings is wrong: `PROGRAM: invalid VARIABLE: reason`.

A setting's location in a pydantic error is its field name or alias, which this project keeps
equal to the environment variable's name in lower case; upper-cased, it is what the user set.
"""

from __future__ import annotations

import sys
from typing import TextIO

from pydantic import ValidationError

EXIT_INVALID_SETTINGS = 2


def problems(error: ValidationError) -> list[str]:
    """One line per invalid value, naming the variable."""
    lines = []
    for problem in error.errors():
        variable = ".".join(str(part) for part in problem["loc"]).upper() or "SETTINGS"
        lines.append(f"invalid {variable}: {problem['msg']}")
    return lines


def report_invalid_settings(
    program: str, error: ValidationError, stream: TextIO | None = None
) -> int:
    """Print the problems, one line each, and return the exit code for invalid settings."""
    for line in problems(error):
        print(f"{program}: {line}", file=stream or sys.stderr)
    return EXIT_INVALID_SETTINGS
