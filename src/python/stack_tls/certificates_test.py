from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography import x509

from stack_tls.certificates import ensure_certificate, server_ssl_context


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
