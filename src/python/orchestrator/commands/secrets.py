"""`secrets set NAME`: a secret read from stdin (not echoed on a terminal) into the user's
secrets file."""

from __future__ import annotations

import getpass
import os
import sys

from orchestrator.secret_store import SecretStore


def set_secret(name: str) -> int:
    store = SecretStore.default(os.environ)
    if sys.stdin.isatty():
        value = getpass.getpass(f"{name} (not echoed): ")
    else:
        value = sys.stdin.readline()
    store.set(name, value.strip())
    print(f"stored {name} in {store.path} (mode 600)")
    return 0
