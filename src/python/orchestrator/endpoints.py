"""Where a service is reached from this host."""

from __future__ import annotations

from dataclasses import dataclass

# Bind or publish addresses that mean "every interface": this host reaches them on loopback.
_WILDCARDS = frozenset({"0.0.0.0", "::", ""})


def reachable_host(address: str) -> str:
    """The address this host uses to reach a service bound or published on address."""
    return "127.0.0.1" if address in _WILDCARDS else address


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    scheme: str

    def url(self, path: str = "") -> str:
        return f"{self.scheme}://{self.host}:{self.port}{path}"
