from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import stat
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509

from stack_tls import certificates
from stack_tls.certificates import ensure_certificate, pinned_client_context, server_ssl_context
from testsupport.processes import free_port


def test_creates_a_pair_once_and_keeps_it(tmp_path: Path) -> None:
    cert, key = ensure_certificate(tmp_path / "certs", "gpu-box")
    first = cert.read_bytes()
    assert key.stat().st_mode & 0o777 == 0o600
    names = x509.load_pem_x509_certificate(first).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert {"gpu-box", "localhost"} <= set(names.value.get_values_for_type(x509.DNSName))
    ensure_certificate(tmp_path / "certs", "gpu-box")
    assert cert.read_bytes() == first
    assert isinstance(server_ssl_context(tmp_path / "certs"), ssl.SSLContext)


def test_half_a_pair_is_an_error_not_a_silent_overwrite(tmp_path: Path) -> None:
    cert, key = ensure_certificate(tmp_path)
    key.unlink()
    with pytest.raises(FileNotFoundError, match="key.pem is missing"):
        ensure_certificate(tmp_path)
    assert cert.exists()


def test_the_key_is_private_from_its_first_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Made readable by others first and restricted afterwards would leave a window: the key
    # must be created 0600, so no later chmod is needed (or allowed here).
    def no_chmod(self: Path, mode: int) -> None:
        raise AssertionError(f"chmod {mode:o} of {self}: the file was created too open")

    monkeypatch.setattr(Path, "chmod", no_chmod)
    previous = os.umask(0)
    try:
        _, key = ensure_certificate(tmp_path, "gpu-box")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def _expiry(cert: Path) -> datetime.datetime:
    return x509.load_pem_x509_certificate(cert.read_bytes()).not_valid_after_utc


def test_our_pair_is_renewed_near_its_end_a_users_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(certificates, "VALID_DAYS", 10)
    cert, _ = ensure_certificate(tmp_path / "ours")
    soon = _expiry(cert)
    monkeypatch.setattr(certificates, "VALID_DAYS", 365)
    ensure_certificate(tmp_path / "ours")
    assert _expiry(cert) - soon > datetime.timedelta(days=300)

    # Someone's own certificate (another issuer) is theirs to renew: used as it is.
    monkeypatch.setattr(certificates, "ISSUER_ORGANIZATION", "Example Corp")
    monkeypatch.setattr(certificates, "VALID_DAYS", 10)
    theirs, _ = ensure_certificate(tmp_path / "theirs")
    monkeypatch.undo()
    before = theirs.read_bytes()
    ensure_certificate(tmp_path / "theirs")
    assert theirs.read_bytes() == before


def test_a_name_now_wanted_gets_a_new_pair(tmp_path: Path) -> None:
    cert, _ = ensure_certificate(tmp_path, "localhost")
    ensure_certificate(tmp_path, "localhost", "personaplex-moshi-backend", "10.0.0.5")
    alt = x509.load_pem_x509_certificate(cert.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert "personaplex-moshi-backend" in alt.value.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("10.0.0.5") in alt.value.get_values_for_type(x509.IPAddress)


async def test_a_pinned_client_trusts_the_stacks_certificate_and_no_other(
    tmp_path: Path,
) -> None:
    ours, _ = ensure_certificate(tmp_path / "ours")
    other, _ = ensure_certificate(tmp_path / "other")

    async def answer(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(
        runner, "127.0.0.1", port, ssl_context=server_ssl_context(tmp_path / "ours")
    ).start()
    try:
        url = f"https://127.0.0.1:{port}/"
        async with aiohttp.ClientSession() as http:
            async with http.get(url, ssl=pinned_client_context(ours)) as response:
                assert response.status == 200
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await http.get(url, ssl=pinned_client_context(other))
    finally:
        await runner.cleanup()
