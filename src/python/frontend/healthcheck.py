"""The container's HEALTHCHECK: exit 0 when this frontend's /health answers 200.

Runs from the image's virtualenv (`python -m frontend.healthcheck`), so the image needs no curl.
"""

from __future__ import annotations

import ssl
import sys
import urllib.error
import urllib.request

from frontend.settings import FrontendSettings


def main() -> int:
    settings = FrontendSettings()
    scheme = "https" if settings.moshi_use_ssl else "http"
    url = f"{scheme}://127.0.0.1:{settings.app_port}/health"
    # Our own self-signed certificate on loopback: there is nothing to verify it against.
    context = ssl._create_unverified_context() if settings.moshi_use_ssl else None
    try:
        with urllib.request.urlopen(url, timeout=3, context=context) as response:
            print(f"{url}: HTTP {response.status}")
    except urllib.error.HTTPError as error:
        print(f"{url}: HTTP {error.code}")
        return 1
    except (urllib.error.URLError, OSError) as error:
        print(f"{url}: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
