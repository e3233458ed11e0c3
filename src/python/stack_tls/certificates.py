"""TLS for MOSHI_USE_SSL: a self-signed pair made with `cryptography` when none exists."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"


def _write_self_signed(cert_path: Path, key_path: Path, hostname: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    alt_names: list[x509.GeneralName] = [
        x509.DNSName(hostname),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def ensure_certificate(cert_dir: Path, hostname: str = "localhost") -> tuple[Path, Path]:
    """(cert.pem, key.pem) in cert_dir, creating a self-signed pair if both are missing."""
    cert_path, key_path = cert_dir / CERT_FILE, cert_dir / KEY_FILE
    if not cert_path.exists() and not key_path.exists():
        cert_dir.mkdir(parents=True, exist_ok=True)
        _write_self_signed(cert_path, key_path, hostname)
    elif not (cert_path.exists() and key_path.exists()):
        missing = key_path if cert_path.exists() else cert_path
        raise FileNotFoundError(f"{missing} is missing (both {CERT_FILE} and {KEY_FILE} needed)")
    return cert_path, key_path


def server_ssl_context(cert_dir: Path, hostname: str = "localhost") -> ssl.SSLContext:
    cert_path, key_path = ensure_certificate(cert_dir, hostname)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context
