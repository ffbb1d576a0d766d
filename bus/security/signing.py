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
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
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
    "SignatureRefused",
    "SignedBy",
    "public_key_from_text",
    "public_key_text",
    "sign_request",
    "verify_request",
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
    """What a verified signature says: who, when, with which nonce."""

    key_id: str
    created: datetime
    nonce: str


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
            refusal = f"the signature is refused: {exc}"  # the library's words name no secret
            continue
        except HTTPMessageSignaturesException as exc:
            raise SignatureRefused(f"the signature is malformed: {exc}") from exc
        return _signed_by(results[0].parameters, key_id, now or datetime.now(UTC))
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
