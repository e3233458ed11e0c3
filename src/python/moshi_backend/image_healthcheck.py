"""The container's HEALTHCHECK: exit 0 when this server's /health says ready.

Runs from the image's virtualenv (`python -m moshi_backend.image_healthcheck`), so the image
needs no curl.
"""

from __future__ import annotations

import json
import sys

from moshi_backend.settings import BackendSettings
from stack_tls.certificates import CERT_FILE
from stack_tls.loopback import get_own_health


def main() -> int:
    settings = BackendSettings()
    cert = settings.moshi_ssl_dir / CERT_FILE if settings.moshi_use_ssl else None
    url, body = get_own_health(settings.moshi_port, cert)
    if body is None:
        return 1
    try:
        document = json.loads(body)
    except ValueError as error:
        print(f"{url}: {error}")
        return 1
    print(f"{url}: {document.get('status')} ({document.get('engine')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
