"""A service's own /health over loopback, for the containers' HEALTHCHECK commands.

Standard library only, so that an image needs no curl.
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request


def get_own_health(port: int, use_ssl: bool, timeout_s: float = 3.0) -> tuple[str, bytes | None]:
    """(url, body) when /health answers 200; body None after printing why it did not."""
    url = f"{'https' if use_ssl else 'http'}://127.0.0.1:{port}/health"
    # Our own self-signed certificate on loopback: there is nothing to verify it against.
    context = ssl._create_unverified_context() if use_ssl else None
    try:
        with urllib.request.urlopen(url, timeout=timeout_s, context=context) as response:
            return url, response.read()
    except urllib.error.HTTPError as error:
        print(f"{url}: HTTP {error.code} {error.read()[:300]!r}")
    except (urllib.error.URLError, OSError) as error:
        print(f"{url}: {error}")
    return url, None
