"""Signed messages: HTTP Message Signatures (RFC 9421) with Ed25519, as partners sign requests.

A partner that registers a signing key (``signing_keys`` in the client directory) signs every
request it makes: the method, the target URI and the body's ``Content-Digest`` (RFC 9530), with
the time it signed (``created``) and a fresh ``nonce``, under ``keyid`` = its client id. The bus
refuses a request from it that is unsigned, signed with another key, altered after signing,
older than ``BUS_SIGNATURE_MAX_AGE_SECONDS`` (or dated in the future), or whose nonce it has seen
(:mod:`bus.store.nonces`). The ``http-message-signatures`` library does the RFC's work (signature
base, structured fields, digest); this module adapts the bus's requests to it and sets the policy.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageSigner,
    HTTPMessageVerifier,
    InvalidSignature,
    MappingKeyResolver,
    algorithms,
)

__all__ = [
    "REQUEST_HASH_HEADER",
    "SignatureRefused",
    "SignedBy",
    "public_jwk",
    "public_key_from_text",
    "public_key_text",
    "request_hash",
    "sign_request",
    "sign_response",
    "verify_request",
    "verify_response",
]

#: What every signature must cover; a request with a body also its Content-Digest.
COVERED: Final = ("@method", "@target-uri")
_WITH_BODY: Final = (*COVERED, "content-digest")
#: Clocks of partner and bus may differ this much for ``created`` in the future.
_SKEW: Final = timedelta(seconds=30)


class SignatureRefused(ValueError):
    """Raised when a request's signature cannot be accepted; says why (no secret in it)."""


@dataclass(frozen=True, slots=True)
class SignedBy:
    """What a verified signature says: who, when, with which nonce, and the signature itself
    (its ``Signature`` value, which the reply's request hash is taken of)."""

    key_id: str
    created: datetime
    nonce: str
    signature: str = ""


class _Fields:
    """Header field lines, in order, as the library reads (and, to sign, writes) them."""

    def __init__(self, lines: Iterable[tuple[str, str]]) -> None:
        self._lines = list(lines)

    def items(self) -> list[tuple[str, str]]:
        return list(self._lines)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name for name, _ in self._lines))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(n.lower() == name.lower() for n, _ in self._lines)

    def __setitem__(self, name: str, value: str) -> None:
        del self[name]
        self._lines.append((name, value))

    def __delitem__(self, name: str) -> None:
        self._lines = [(n, v) for n, v in self._lines if n.lower() != name.lower()]


@dataclass
class _Request:
    method: str
    url: str
    headers: _Fields


def public_key_from_text(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key from its 32 raw bytes in base64 (standard or URL-safe)."""
    padded = text.strip() + "=" * (-len(text.strip()) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a signing key is 32 bytes of Ed25519 public key in base64") from exc


def public_key_text(key: Ed25519PublicKey) -> str:
    """The key as the client directory keeps it: its 32 raw bytes in base64."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def public_jwk(key_id: str, key: Ed25519PublicKey) -> dict[str, str]:
    """``key`` as a JSON Web Key (RFC 8037: OKP, Ed25519, unpadded base64url)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
    return {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": key_id, "x": x}


def sign_request(
    method: str,
    url: str,
    body: bytes,
    *,
    key_id: str,
    key: Ed25519PrivateKey,
    headers: Mapping[str, str] | None = None,
    created: datetime | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The headers that sign a request (``Content-Digest``, ``Signature-Input``, ``Signature``).

    What a partner (or a test) adds to its request; the bus verifies them with
    :func:`verify_request`.
    """
    request = _Request(method.upper(), url, _Fields((headers or {}).items()))
    signer = HTTPMessageSigner(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={key_id: key}),
    )
    signer.sign(
        request,
        key_id=key_id,
        created=created or datetime.now(UTC),
        nonce=nonce or secrets.token_urlsafe(16),
        covered_component_ids=_WITH_BODY if body else COVERED,
        body=body if body else None,
    )
    wanted = {"content-digest", "signature-input", "signature"}
    return {name: value for name, value in request.headers.items() if name.lower() in wanted}


def verify_request(
    method: str,
    url: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    *,
    key_id: str,
    keys: Sequence[Ed25519PublicKey],
    max_age: timedelta,
    now: datetime | None = None,
) -> SignedBy:
    """Check the request's signature by ``key_id`` with one of ``keys``; what it says, or
    :class:`SignatureRefused` saying why."""
    fields = _Fields(headers)
    if "signature" not in fields or "signature-input" not in fields:
        raise SignatureRefused(
            f"client {key_id} signs its requests: send Signature-Input and Signature (RFC 9421)"
        )
    request = _Request(method.upper(), url, fields)
    refusal = "the signature does not verify with the client's key"
    for key in keys:
        verifier = HTTPMessageVerifier(
            signature_algorithm=algorithms.ED25519,
            key_resolver=MappingKeyResolver(public_keys={key_id: key}, private_keys={}),
        )
        try:
            results = verifier.verify(
                request,
                max_age=max_age,
                require_components=_WITH_BODY if body else COVERED,
                body=body,
            )
        except InvalidSignature as exc:
            # The library's words name no secret; it has none for a key that does not match.
            refusal = f"the signature is refused: {_why(exc)}"
            continue
        except HTTPMessageSignaturesException as exc:
            raise SignatureRefused(f"the signature is malformed: {exc}") from exc
        signed = _signed_by(results[0].parameters, key_id, now or datetime.now(UTC))
        value = ", ".join(v for n, v in fields.items() if n.lower() == "signature")
        return replace(signed, signature=value)
    raise SignatureRefused(refusal)


def _signed_by(parameters: Mapping[str, object], key_id: str, now: datetime) -> SignedBy:
    if parameters.get("keyid") != key_id:
        raise SignatureRefused(f"the signature's keyid must be the client id {key_id}")
    created, nonce = parameters.get("created"), parameters.get("nonce")
    if not isinstance(created, int) or not isinstance(nonce, str) or not 8 <= len(nonce) <= 128:
        raise SignatureRefused("the signature must carry created and a nonce (8-128 characters)")
    moment = datetime.fromtimestamp(created, UTC)
    if moment > now + _SKEW:
        raise SignatureRefused("the signature is dated in the future: check the sender's clock")
    return SignedBy(key_id, moment, nonce)


# --- the bus's replies -----------------------------------------------------------------------

REQUEST_HASH_HEADER: Final = "Request-Hash"
"""Names the signed request a reply answers (X-Road's request hash): ``sha-256=:…:`` of the
request's ``Signature`` value, which covers its method, target, body digest, time and nonce."""
_REPLY_COVERED: Final = ("@status", "request-hash")


def request_hash(signature_value: str) -> str:
    """The ``Request-Hash`` of a request whose ``Signature`` header is ``signature_value``."""
    digest = hashlib.sha256(signature_value.encode("latin-1")).digest()
    return f"sha-256=:{base64.b64encode(digest).decode('ascii')}:"


@dataclass
class _Response:
    status_code: int
    headers: _Fields
    request: None = None


def sign_response(
    status: int,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    *,
    key_id: str,
    key: Ed25519PrivateKey,
    created: datetime | None = None,
) -> dict[str, str]:
    """The headers that sign a reply: its status, its ``Request-Hash`` and its body's digest."""
    response = _Response(status, _Fields(headers))
    signer = HTTPMessageSigner(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={key_id: key}),
    )
    signer.sign(
        response,
        key_id=key_id,
        created=created or datetime.now(UTC),
        covered_component_ids=(*_REPLY_COVERED, "content-digest") if body else _REPLY_COVERED,
        body=body if body else None,
    )
    wanted = {"content-digest", "signature-input", "signature"}
    return {name: value for name, value in response.headers.items() if name.lower() in wanted}


def verify_response(
    status: int,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    *,
    key_id: str,
    key: Ed25519PublicKey,
    signature_of_request: str,
    max_age: timedelta = timedelta(minutes=5),
) -> None:
    """Check a reply of the bus (what a partner does): signed by ``key_id``, answering the
    request that carried ``signature_of_request``; :class:`SignatureRefused` if not."""
    fields = _Fields(headers)
    expected = request_hash(signature_of_request)
    if {n.lower(): v for n, v in fields.items()}.get("request-hash") != expected:
        raise SignatureRefused("the reply answers another request (Request-Hash differs)")
    verifier = HTTPMessageVerifier(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(public_keys={key_id: key}, private_keys={}),
    )
    try:
        verifier.verify(
            _Response(status, fields),
            max_age=max_age,
            require_components=(*_REPLY_COVERED, "content-digest") if body else _REPLY_COVERED,
            body=body,
        )
    except (InvalidSignature, HTTPMessageSignaturesException) as exc:
        raise SignatureRefused(f"the reply's signature is refused: {_why(exc)}") from exc


def _why(exc: Exception) -> str:
    """The library's reason, or what an empty one means (the key does not match)."""
    return str(exc) or "it does not verify with the signer's key"
