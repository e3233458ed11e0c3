"""The container's HEALTHCHECK: exit 0 when this server's /health says ready.

Runs from the server PEX (PEX_MODULE=moshi_backend.healthcheck), so the image needs no curl.
"""

from __future__ import annotations

import json
import ssl
import sys
import urllib.error
import urllib.request

from moshi_backend.settings import BackendSettings


def main() -> int:
    settings = BackendSettings()
    scheme = "https" if settings.moshi_use_ssl else "http"
    url = f"{scheme}://127.0.0.1:{settings.moshi_port}/health"
    # Our own self-signed certificate on loopback: there is nothing to verify it against.
    context = ssl._create_unverified_context() if settings.moshi_use_ssl else None
    try:
        with urllib.request.urlopen(url, timeout=3, context=context) as response:
            document = json.load(response)
    except urllib.error.HTTPError as error:
        print(f"{url}: HTTP {error.code} {error.read()[:300]!r}")
        return 1
    except (urllib.error.URLError, OSError, ValueError) as error:
        print(f"{url}: {error}")
        return 1
    print(f"{url}: {document.get('status')} ({document.get('engine')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
