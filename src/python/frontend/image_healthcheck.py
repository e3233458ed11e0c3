"""The container's HEALTHCHECK: exit 0 when this frontend's /health answers 200.

Runs from the image's virtualenv (`python -m frontend.image_healthcheck`), so the image needs no
curl.
"""

from __future__ import annotations

import sys

from frontend.settings import FrontendSettings
from stack_tls.certificates import CERT_FILE
from stack_tls.loopback import get_own_health


def main() -> int:
    settings = FrontendSettings()
    cert = settings.app_ssl_dir / CERT_FILE if settings.moshi_use_ssl else None
    url, body = get_own_health(settings.app_port, cert)
    if body is None:
        return 1
    print(f"{url}: HTTP 200")
    return 0


if __name__ == "__main__":
    sys.exit(main())
