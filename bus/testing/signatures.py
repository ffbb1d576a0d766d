"""A simulator that signs, as a partner on a signing exchange does: it checks the bus's
signatures and signs its own answers.

Wrap any simulator app in :class:`PartnerSignatures` and it behaves like a partner system that
knows the agencies' public keys (``trusted``, by key id = agency code):

* a call to one of its own routes (``/_sim/`` stays open) must be signed (RFC 9421) by a trusted
  key, fresh, and carry a nonce it has not seen; otherwise it answers 401 without the route
  seeing the call, and counts the refusal;
* with its own ``key``, each answer to a verified call carries ``Request-Hash`` and its
  signature, made by the same middleware that signs the bus's replies
  (:class:`bus.api.replies.SignedReplies`).

``forgery`` makes it misbehave on purpose, for tests of the bus's checks: ``"unsigned"``
answers without a signature, ``"wrong_key"`` signs with a key nobody trusts,
``"wrong_request"`` names another request in ``Request-Hash``.

Example::

    partner = PartnerSignatures(trusted={"000.00.00.H12": agency_public}, key_id="G12", key=k)
    with serve_app(partner.wrap(create_simulator_app())) as url:
        ...
    assert partner.refused == 0
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bus.api.replies import REQUEST_HASH_STATE, SignedReplies
from bus.security.signing import SignatureRefused, request_hash, verify_request

__all__ = ["Forgery", "PartnerSignatures"]

Forgery = Literal["unsigned", "wrong_key", "wrong_request"]
_OPEN_PREFIX: Final = "/_sim/"


class PartnerSignatures:
    """The signature policy of one simulated partner, with its counters (thread-safe)."""

    def __init__(
        self,
        *,
        trusted: Mapping[str, Ed25519PublicKey],
        key_id: str | None = None,
        key: Ed25519PrivateKey | None = None,
        max_age: timedelta = timedelta(minutes=5),
    ) -> None:
        if (key_id is None) != (key is None):
            raise ValueError("give both key_id and key, or neither")
        self.trusted = dict(trusted)
        self.key_id = key_id
        self.key = key
        self.max_age = max_age
        self.forgery: Forgery | None = None
        #: Calls whose signature verified, and calls refused (unsigned, forged, stale, replayed).
        self.verified = 0
        self.refused = 0
        #: The agency each verified call was signed by, in order.
        self.signed_by: list[str] = []
        self._nonces: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """``app`` behind this partner's signature checks (and reply signatures)."""
        return _SignatureGate(app, self)

    def admit(self, request: Request, body: bytes) -> str:
        """The request hash of a call signed by a trusted key, fresh and new; else
        :class:`SignatureRefused` saying why."""
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        refusal = SignatureRefused("no trusted agency key is configured")
        for key_id, key in self.trusted.items():
            try:
                signed = verify_request(
                    request.method,
                    str(request.url),
                    headers,
                    body,
                    key_id=key_id,
                    keys=[key],
                    max_age=self.max_age,
                    now=datetime.now(UTC),
                )
            except SignatureRefused as exc:
                refusal = exc
                continue
            with self._lock:
                if (key_id, signed.nonce) in self._nonces:
                    raise SignatureRefused("replayed: this nonce was already used")
                self._nonces.add((key_id, signed.nonce))
                self.signed_by.append(key_id)
            return request_hash(signed.signature)
        raise refusal

    def count(self, *, verified: bool) -> None:
        with self._lock:
            if verified:
                self.verified += 1
            else:
                self.refused += 1


class _SignatureGate:
    """The ASGI middleware :meth:`PartnerSignatures.wrap` returns."""

    def __init__(self, app: ASGIApp, partner: PartnerSignatures) -> None:
        self.app = app
        self.partner = partner
        self._signed: ASGIApp = app
        self._forged: ASGIApp = app
        if partner.key is not None and partner.key_id is not None:
            self._signed = SignedReplies(app, key_id=partner.key_id, key=partner.key)
            nobody = Ed25519PrivateKey.generate()
            self._forged = SignedReplies(app, key_id=partner.key_id, key=nobody)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(_OPEN_PREFIX):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        try:
            hashed = self.partner.admit(Request(scope), body)
        except SignatureRefused as exc:
            self.partner.count(verified=False)
            refusal = JSONResponse(
                {"error": "invalid_signature", "message": str(exc)}, status_code=401
            )
            await refusal(scope, receive, send)
            return
        self.partner.count(verified=True)
        forgery = self.partner.forgery
        if forgery == "wrong_request":
            hashed = request_hash("a signature of some other request")
        if forgery != "unsigned":
            scope.setdefault("state", {})[REQUEST_HASH_STATE] = hashed
        inner = self._forged if forgery == "wrong_key" else self._signed
        await inner(scope, _replay(body, receive), send)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then listens to the client."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
