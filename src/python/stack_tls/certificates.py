"""TLS for MOSHI_USE_SSL: the stack's own self-signed pair, made with `cryptography` when none
exists (or when ours nears its end), and client contexts that trust exactly that certificate."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import ssl
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
# Marks the certificates this code made: only those are renewed; one a user put there is theirs.
ISSUER_ORGANIZATION = "PersonaPlex voice stack (self-signed)"
VALID_DAYS = 365
# A pair closer than this to its end is replaced at start.
RENEW_WITHIN = datetime.timedelta(days=30)
# Every pair answers for these, whatever else it is asked for.
_ALWAYS = ("localhost", "127.0.0.1", "::1")
# Bind addresses, not names a client could ask for.
_WILDCARDS = frozenset({"0.0.0.0", "::", ""})


def _alt_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _names(hostnames: Iterable[str]) -> list[str]:
    wanted = [name for name in (*hostnames, *_ALWAYS) if name not in _WILDCARDS]
    return list(dict.fromkeys(wanted))


def _write_private(path: Path, data: bytes) -> None:
    """Created 0600 from the first byte (no moment where others may read it), then moved in."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def _write_self_signed(cert_path: Path, key_path: Path, names: list[str]) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ISSUER_ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName([_alt_name(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write_private(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _needs_renewal(cert_path: Path, names: list[str]) -> bool:
    """Ours and near its end, or not answering for a name now wanted; never a user's own."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    organizations = cert.issuer.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    if [attribute.value for attribute in organizations] != [ISSUER_ORGANIZATION]:
        return False
    if cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC) < RENEW_WITHIN:
        return True
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    present = {str(n) for n in alt.get_values_for_type(x509.DNSName)} | {
        str(n) for n in alt.get_values_for_type(x509.IPAddress)
    }
    return not {str(_alt_name(n).value) for n in names} <= present


def ensure_certificate(
    cert_dir: Path, hostname: str = "localhost", *more_names: str
) -> tuple[Path, Path]:
    """(cert.pem, key.pem) in cert_dir: a self-signed pair for hostname and more_names (and
    localhost) is made when there is none, and made again when ours nears its end or lacks a
    name; a pair someone else put there is used as it is."""
    cert_path, key_path = cert_dir / CERT_FILE, cert_dir / KEY_FILE
    names = _names([hostname, *more_names])
    if not cert_path.exists() and not key_path.exists():
        cert_dir.mkdir(parents=True, exist_ok=True)
        _write_self_signed(cert_path, key_path, names)
    elif not (cert_path.exists() and key_path.exists()):
        missing = key_path if cert_path.exists() else cert_path
        raise FileNotFoundError(f"{missing} is missing (both {CERT_FILE} and {KEY_FILE} needed)")
    elif _needs_renewal(cert_path, names):
        _write_self_signed(cert_path, key_path, names)
    return cert_path, key_path


def server_ssl_context(cert_dir: Path, hostname: str = "localhost") -> ssl.SSLContext:
    cert_path, key_path = ensure_certificate(cert_dir, hostname)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


def pinned_client_context(cert_file: Path) -> ssl.SSLContext:
    """A client context that trusts this one certificate (the stack's own) and nothing else,
    host names checked."""
    return ssl.create_default_context(cafile=str(cert_file))
