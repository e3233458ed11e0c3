"""Is an OTLP collector there? One HEAD request, bounded in time however the network behaves."""

from __future__ import annotations

import http.client
import ssl
import threading
import time
from urllib.parse import SplitResult, urlsplit

PROBE_TIMEOUT_S = 2.0


def probe_collector(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """None if an HTTP server answers a HEAD of url within timeout_s, else what went wrong.

    Any status counts as an answer (a collector says 405 to HEAD): the point is that it responds
    in time. Blocks the calling thread up to timeout_s, name resolution included, which socket
    timeouts alone do not bound: the request runs on a daemon thread that is waited for that long.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"not an http(s) URL: {url!r}"
    outcome: list[str | None] = []
    prober = threading.Thread(
        target=lambda: outcome.append(_head(parts, timeout_s)),
        name="telemetry-probe",
        daemon=True,
    )
    prober.start()
    prober.join(timeout_s)
    if not outcome:
        return f"no answer to HEAD {url} within {timeout_s:g} s"
    return outcome[0]


def _head(parts: SplitResult, timeout_s: float) -> str | None:
    deadline = time.monotonic() + timeout_s
    try:
        host, port = parts.hostname or "", parts.port
        if parts.scheme == "https":
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, port, timeout=timeout_s, context=_reachability_only_tls()
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
        try:
            connection.request("HEAD", parts.path or "/")
            if connection.sock is not None:  # what is left of the deadline, not a fresh timeout
                connection.sock.settimeout(max(deadline - time.monotonic(), 0.001))
            connection.getresponse().close()
        finally:
            connection.close()
    except TimeoutError:
        return f"no answer to HEAD {parts.geturl()} within {timeout_s:g} s"
    # ValueError: a bad port or host name (IDNA) in the URL.
    except (OSError, http.client.HTTPException, ValueError) as error:
        return f"{type(error).__name__}: {error}"
    return None


def _reachability_only_tls() -> ssl.SSLContext:
    # The probe sends nothing and only asks whether the collector answers in time. Whether to
    # trust it is the exporter's decision, with the CA it is configured with (which may be a
    # private one this context would not know).
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
