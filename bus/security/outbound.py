"""Signed calls to partners: the bus signs each request for an agency and checks each answer.

A connector with ``[signing]`` in its ``connector.toml`` hands its HTTP client (REST or SOAP, the
same ``httpx`` client either way) the hooks of a :class:`SignedPartnerCalls`:

* every request is signed with the agency's Ed25519 key (RFC 9421: method, target URI,
  ``Content-Digest``, ``created``, a fresh ``nonce``; key id = agency code), so the partner
  knows which agency called and that nothing changed on the way;
* with ``partner_key`` set, every answer the bus would act on (status below 400) must carry
  ``Request-Hash`` naming this very request (X-Road's request hash) and be signed with the
  partner's key; one that is not raises :class:`~bus.errors.UntrustedReply`. An error answer
  may come unsigned (a proxy in front of the partner answers 503 without its key), but one that
  is signed must verify.

Both signatures are evidence: inside :func:`recording_signatures` (the worker wraps each
delivery in it) every signed exchange is collected, and the worker seals them into the hop's
audit record, whence ``bus audit export`` lists them.

The hooks are ``httpx`` event hooks rather than an ``httpx.Auth``: a client has one auth
(a partner's basic or session login), while hooks add to whatever auth it uses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar
from datetime import timedelta
from typing import Any, Final

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bus.connector import ConnectorConfig
from bus.errors import UntrustedReply
from bus.logs import propagate_trace
from bus.security.agency_keys import AgencyKeyError, agency_keys_dir, load_agency_key
from bus.security.signing import (
    SignatureRefused,
    public_key_from_text,
    sign_request,
    verify_response,
)

__all__ = [
    "SignedPartnerCalls",
    "partner_hooks",
    "recording_signatures",
    "signed_partner_calls",
]

#: Where each signed exchange of the current delivery is collected (None: nobody collects).
_RECORDED: ContextVar[list[dict[str, Any]] | None] = ContextVar("signed_exchanges", default=None)
_SIGNATURE_FIELDS: Final = ("content-digest", "signature-input", "signature")
_REPLY_FIELDS: Final = (*_SIGNATURE_FIELDS, "request-hash")


@contextlib.contextmanager
def recording_signatures() -> Iterator[list[dict[str, Any]]]:
    """Collect the signed exchanges made inside the block (this task and tasks it starts)."""
    recorded: list[dict[str, Any]] = []
    token = _RECORDED.set(recorded)
    try:
        yield recorded
    finally:
        _RECORDED.reset(token)


class SignedPartnerCalls:
    """Signs a connector's requests as ``agency`` and checks its partner's signed answers."""

    def __init__(
        self,
        *,
        connector_id: str,
        agency: str,
        key: Ed25519PrivateKey,
        partner_key_id: str,
        partner_key: Ed25519PublicKey | None,
        max_age: timedelta = timedelta(minutes=5),
    ) -> None:
        self.connector_id = connector_id
        self.agency = agency
        self._key = key
        self.partner_key_id = partner_key_id
        self._partner_key = partner_key
        self._max_age = max_age

    def event_hooks(self) -> dict[str, list[Callable[[Any], Awaitable[None]]]]:
        """The hooks to give ``httpx.AsyncClient(event_hooks=...)``."""
        return {"request": [self.sign], "response": [self.check]}

    async def sign(self, request: httpx.Request) -> None:
        """Add ``Content-Digest``, ``Signature-Input`` and ``Signature`` to ``request``."""
        body = await request.aread()
        added = sign_request(
            request.method,
            str(request.url),
            body,
            key_id=self.agency,
            key=self._key,
            headers=dict(request.headers.items()),
        )
        request.headers.update(added)

    async def check(self, response: httpx.Response) -> None:
        """Verify the partner's answer to a signed request, record the exchange, or raise."""
        request = response.request
        sent_signature = request.headers.get("signature")
        if sent_signature is None:
            return  # not a request this client signed
        await response.aread()
        signed = "signature" in response.headers
        recorded = self._record(request, response)
        if self._partner_key is None or (not signed and response.status_code >= 400):
            return
        try:
            verify_response(
                response.status_code,
                list(response.headers.multi_items()),
                response.content,
                key_id=self.partner_key_id,
                key=self._partner_key,
                signature_of_request=sent_signature,
                max_age=self._max_age,
            )
        except SignatureRefused as exc:
            if recorded is not None:
                recorded["reply_verified"] = False
            raise UntrustedReply(
                f"{self.connector_id}: the answer to {request.method} {request.url.path} "
                f"(HTTP {response.status_code}) cannot be trusted: {exc}; the partner signs "
                f"with key {self.partner_key_id}: check [signing] partner_key",
                fault_code="UNTRUSTED_REPLY",
            ) from exc
        if recorded is not None:
            recorded["reply_verified"] = True

    def _record(self, request: httpx.Request, response: httpx.Response) -> dict[str, Any] | None:
        """Add the exchange's signatures to the collection in force, if any."""
        collected = _RECORDED.get()
        if collected is None:
            return None
        entry: dict[str, Any] = {
            "connector": self.connector_id,
            "method": request.method,
            "target": str(request.url),
            "signed_as": self.agency,
            "request_signature": _fields(request.headers, _SIGNATURE_FIELDS),
            "reply_status": response.status_code,
            "reply_key_id": self.partner_key_id if self._partner_key is not None else None,
            "reply_signature": _fields(response.headers, _REPLY_FIELDS) or None,
            "reply_verified": None,
        }
        collected.append(entry)
        return entry


def _fields(headers: httpx.Headers, names: tuple[str, ...]) -> dict[str, str]:
    """The signature fields present, as sent (lower-case names)."""
    return {name: headers[name] for name in names if name in headers}


def partner_hooks(
    signing: SignedPartnerCalls | None,
) -> dict[str, list[Callable[[Any], Awaitable[None]]]]:
    """The httpx event hooks of a partner client: the message's trace context on every call
    (W3C ``traceparent``), then, if it signs, the signature (which the trace header does not
    disturb: it covers the method, target and body digest)."""
    hooks: dict[str, list[Callable[[Any], Awaitable[None]]]] = {
        "request": [propagate_trace],
        "response": [],
    }
    if signing is not None:
        for stage, added in signing.event_hooks().items():
            hooks[stage] += added
    return hooks


def signed_partner_calls(
    config: ConnectorConfig, environ: Mapping[str, str] | None = None
) -> SignedPartnerCalls | None:
    """The signing hooks ``config`` asks for (None without ``[signing]``); the agency's key is
    read now, so a missing key stops the connector at start-up with what to do."""
    policy = config.signing
    if policy is None:
        return None
    try:
        key = load_agency_key(agency_keys_dir(environ), policy.agency)
    except AgencyKeyError as exc:
        raise AgencyKeyError(f"connector {config.id} signs its calls: {exc}") from exc
    partner_key = policy.partner_key
    return SignedPartnerCalls(
        connector_id=config.id,
        agency=policy.agency,
        key=key,
        partner_key_id=policy.partner_key_id or config.agency,
        partner_key=None if partner_key is None else public_key_from_text(partner_key),
        max_age=timedelta(seconds=policy.max_age_seconds),
    )
