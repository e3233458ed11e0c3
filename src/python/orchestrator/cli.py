"""Command line of the orchestrator: `./pants run orchestrator -- COMMAND`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from orchestrator.settings import StackSettings


def _print_config(settings: StackSettings) -> int:
    rows = settings.describe()
    width = max(len(name) for name in rows)
    for name, value in rows.items():
        print(f"{name:<{width}}  {value}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="PersonaPlex voice stack orchestrator.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("config", help="print the resolved configuration (secrets masked)")
    args = parser.parse_args(argv)

    try:
        settings = StackSettings()
    except ValidationError as error:
        for problem in error.errors():
            field = ".".join(str(part) for part in problem["loc"]).upper()
            print(f"orchestrator: invalid {field}: {problem['msg']}", file=sys.stderr)
        return 2

    # `up` becomes the default command once it exists; until then `config` is.
    if args.command in (None, "config"):
        return _print_config(settings)
    parser.error(f"unknown command {args.command}")
    return 2
