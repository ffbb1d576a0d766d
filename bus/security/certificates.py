"""Client certificates (mutual TLS) as a reverse proxy hands them over.

The bus's HTTP server does not terminate TLS itself in production: a reverse proxy (nginx, the
province's X-Road security server) does, verifies the partner's certificate against the CA it
trusts, and forwards the verified certificate in a header (nginx: ``proxy_set_header
X-Client-Cert $ssl_client_escaped_cert;``, URL-encoded PEM). The bus reads that header only from
the proxies listed in ``BUS_TRUSTED_PROXIES``, checks the certificate is within its validity
dates, and identifies the client by the certificate's SHA-256 fingerprint (DER).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives import serialization

__all__ = ["CertificateError", "ProxyList", "certificate_fingerprint", "fingerprint_of_header"]

#: A PEM certificate is a few kilobytes; anything much larger is not one.
_MAX_HEADER_CHARS = 16_384


class CertificateError(ValueError):
    """Raised when a forwarded certificate cannot be used; says why."""


class ProxyList:
    """The addresses allowed to forward a client certificate."""

    def __init__(self, entries: Iterable[str]) -> None:
        self._networks = tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)

    def __contains__(self, host: object) -> bool:
        if not isinstance(host, str) or not self._networks:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._networks)


def certificate_fingerprint(certificate: x509.Certificate) -> str:
    """The SHA-256 (hex) of the certificate's DER encoding, as the client directory keeps it."""
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def fingerprint_of_header(value: str, now: datetime | None = None) -> str:
    """The fingerprint of the certificate in a forwarded header (URL-encoded or plain PEM)."""
    if len(value) > _MAX_HEADER_CHARS:
        raise CertificateError("the forwarded certificate is too large")
    try:
        certificate = x509.load_pem_x509_certificate(unquote(value).encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise CertificateError("the forwarded certificate is not a PEM certificate") from exc
    moment = now or datetime.now(UTC)
    if not certificate.not_valid_before_utc <= moment <= certificate.not_valid_after_utc:
        raise CertificateError("the client certificate is outside its validity dates")
    return certificate_fingerprint(certificate)
