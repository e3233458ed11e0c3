"""A service's own /health over loopback, for the containers' HEALTHCHECK commands.

Standard library only, so that an image needs no curl.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from stack_tls.certificates import pinned_client_context


def get_own_health(
    port: int, cert_file: Path | None, timeout_s: float = 3.0
) -> tuple[str, bytes | None]:
    """(url, body) when /health answers 200; body None after printing why it did not.

    cert_file: the service's own certificate when it serves HTTPS, the one it must present
    (pinned, like every client of the stack's TLS); None for HTTP."""
    url = f"{'https' if cert_file else 'http'}://127.0.0.1:{port}/health"
    context = pinned_client_context(cert_file) if cert_file else None
    try:
        with urllib.request.urlopen(url, timeout=timeout_s, context=context) as response:
            return url, response.read()
    except urllib.error.HTTPError as error:
        print(f"{url}: HTTP {error.code} {error.read()[:300]!r}")
    except (urllib.error.URLError, OSError) as error:
        print(f"{url}: {error}")
    return url, None
