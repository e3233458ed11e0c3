"""`config`: the resolved configuration, secrets masked."""

from __future__ import annotations

from orchestrator.settings import StackSettings


def print_config(settings: StackSettings) -> int:
    rows = settings.describe()
    width = max(len(name) for name in rows)
    for name, value in rows.items():
        print(f"{name:<{width}}  {value}")
    return 0
