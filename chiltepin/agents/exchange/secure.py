"""Credentials of exchanges: bearer tokens and passwords in private files, self-signed
certificates for the embedded exchange, TLS contexts that pin a certificate, and the
"this exchange is unauthenticated" refusal and warning.

A secret is only ever read from a file (never taken from argv or a URL we print) and
never put into a message: errors name the file, not its content.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import socket
import ssl
import stat
from pathlib import Path
from typing import Any

from chiltepin.errors import ConfigError

logger = logging.getLogger(__name__)

#: Bytes of randomness in a generated token (256 bits; the issue asks for at least 128).
TOKEN_BYTES = 32
#: How long a generated certificate is valid (a service may run for months).
CERT_DAYS = 400

_warned: set[str] = set()


def is_loopback(host: str | None) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def write_private(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` created with mode 0600 (replacing a previous file)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return path


def new_token(path: Path) -> Path:
    """A new random bearer token in a 0600 file at ``path``."""
    return write_private(path, secrets.token_urlsafe(TOKEN_BYTES).encode() + b"\n")


def read_secret(path: str | os.PathLike[str], *, key: str) -> str:
    """The secret in file ``path`` (surrounding whitespace removed). One-line ConfigError
    naming ``key`` and the file if it is missing, empty, or readable by other users."""
    shown = f"{key} {str(path)!r}"
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{shown} is not a file", key=key)
        if info.st_mode & 0o077:
            raise ConfigError(
                f"{shown} can be read or written by other users (mode "
                f"{stat.S_IMODE(info.st_mode):04o})",
                key=key,
                hint=f"chmod 600 {path}",
            )
        with open(path, encoding="utf-8") as handle:
            value = handle.read(64 * 1024).strip()
    except FileNotFoundError:
        raise ConfigError(f"{shown} does not exist", key=key) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"{shown} cannot be read: {reason}", key=key) from None
    if not value or any(c.isspace() for c in value):
        raise ConfigError(f"{shown} must hold one secret on one line", key=key)
    return value


def bearer_headers(token_file: str | None) -> dict[str, str]:
    """``Authorization: Bearer`` for the token in ``token_file`` (none without one)."""
    if token_file is None:
        return {}
    return {"Authorization": f"Bearer {read_secret(token_file, key='token_file')}"}


class PinnedContext(ssl.SSLContext):
    """A client TLS context trusting only the certificates in ``cadata`` (PEM).

    Exchange factories travel to Parsl workers by pickle, and a plain ``SSLContext``
    cannot be pickled; this one pickles as its PEM text and is rebuilt on arrival.
    """

    cadata: str

    def __reduce__(self) -> tuple[Any, ...]:
        return (pinned_context, (self.cadata,))


def pinned_context(cadata: str) -> PinnedContext:
    """A verifying client context (hostname checked) trusting only ``cadata``."""
    context = PinnedContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cadata=cadata)
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # a self-signed leaf is the anchor
    context.cadata = cadata
    return context


def context_for(ca_file: str, *, key: str = "ca_file") -> PinnedContext:
    """The client context trusting the certificates in ``ca_file``."""
    try:
        cadata = Path(ca_file).read_text(encoding="ascii")
        return pinned_context(cadata)
    except FileNotFoundError:
        raise ConfigError(f"{key} {ca_file!r} does not exist", key=key) from None
    except (OSError, UnicodeDecodeError, ssl.SSLError, ValueError) as exc:
        raise ConfigError(
            f"{key} {ca_file!r} is not a PEM certificate file: {exc}",
            key=key,
            hint="give the exchange's certificate (or its CA's) in PEM form",
        ) from None


def this_host_names(host: str) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) a certificate for a server bound to ``host`` names."""
    import psutil

    names = {"localhost", socket.gethostname(), socket.getfqdn()}
    addresses = {"127.0.0.1", "::1"}
    if host in ("0.0.0.0", "::", ""):
        for entries in psutil.net_if_addrs().values():
            for entry in entries:
                if entry.family in (socket.AF_INET, socket.AF_INET6):
                    addresses.add(entry.address.split("%", 1)[0])
    else:
        try:
            addresses.add(str(ipaddress.ip_address(host)))
        except ValueError:
            names.add(host)
    return sorted(n for n in names if n), sorted(addresses)


def self_signed(directory: Path, host: str) -> tuple[Path, Path]:
    """A new key (0600) and self-signed certificate in ``directory`` for a server bound
    to ``host``; returns (certificate, key)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    names, addresses = this_host_names(host)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"chiltepin exchange {names[0]}")])
    now = datetime.datetime.now(datetime.timezone.utc)
    alt = [x509.DNSName(n) for n in names] + [
        x509.IPAddress(ipaddress.ip_address(a)) for a in addresses
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_path = write_private(
        directory / "exchange.key",
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    cert_path = write_private(
        directory / "exchange.crt", cert.public_bytes(serialization.Encoding.PEM)
    )
    return cert_path, key_path


def refuse_unauthenticated(what: str, key: str, hint: str) -> None:
    """The one-line refusal of an exchange that others could reach without credentials."""
    raise ConfigError(
        f"{what} is reachable beyond this host's loopback and has no authentication",
        key=key,
        hint=hint + "; or set insecure: true in its exchange block to accept that",
    )


def warn_insecure(label: str) -> None:
    """One warning per exchange per process that ``insecure: true`` is in effect."""
    if label in _warned:
        return
    _warned.add(label)
    logger.warning(
        "exchange %s has no authentication (insecure: true): anyone who can reach it can "
        "list, call and stop your agents",
        label,
    )
