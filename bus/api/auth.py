"""Who is calling: every route but health names its caller, an agency client, or answers 401.

A caller proves who it is in one of three ways, tried in this order:

1. ``Authorization: Bearer <token>``: a token from ``POST /v1/oauth/token`` (OAuth2 client
   credentials), checked with the bus's key;
2. ``X-API-Key: <secret>``: the client's secret itself, for systems that cannot do OAuth2;
3. a client certificate forwarded by a trusted TLS-terminating proxy (mutual TLS).

The rights that follow (what it may submit, push, read, subscribe to) are the client's in the
directory (:mod:`bus.security.clients`), checked by the routes with the helpers here. A dossier
the caller may not read is answered 404, as one that does not exist: its existence is not told.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Final

from fastapi import Depends, Request
from limits import RateLimitItem

from bus.api.body import read_body
from bus.api.problems import Problem
from bus.api.replies import REQUEST_HASH_STATE
from bus.registry import ConnectorRegistry
from bus.security.certificates import CertificateError, ProxyList, fingerprint_of_header
from bus.security.clients import AgencyClient, ClientDirectory, ReadScope, load_clients
from bus.security.signing import (
    SignatureRefused,
    public_key_from_text,
    request_hash,
    verify_request,
)
from bus.security.throttle import Throttle, parse_limits
from bus.security.tokens import TokenError, TokenIssuer, load_or_create_key
from bus.settings import Settings
from bus.store.nonces import first_use_of_nonce
from bus.store.queries import dossier_parties
from bus.topics import pattern_within

__all__ = [
    "Caller",
    "Security",
    "authenticate",
    "failure_key",
    "forbidden",
    "may_read_dossier",
    "require_operator",
    "require_read_all",
    "require_readable_dossier",
    "require_subscription_rights",
]

log = logging.getLogger(__name__)

API_KEY_HEADER: Final = "X-API-Key"
_CHALLENGE: Final = {"WWW-Authenticate": 'Bearer realm="lienthong-bus"'}


@dataclass
class Security:
    """The directory, the token issuer, the trusted proxies and the rate limits of one API
    process."""

    clients: ClientDirectory
    tokens: TokenIssuer
    proxies: ProxyList
    certificate_header: str
    throttle: Throttle
    client_limits: tuple[RateLimitItem, ...]
    failure_limits: tuple[RateLimitItem, ...]
    _own_limits: dict[str, tuple[RateLimitItem, ...]] = field(default_factory=dict)

    def limits_of(self, client: AgencyClient) -> tuple[RateLimitItem, ...]:
        """The client's own limits when the directory gives them, else the default."""
        if client.rate_limit is None:
            return self.client_limits
        limits = self._own_limits.get(client.id)
        if limits is None:
            limits = self._own_limits[client.id] = parse_limits(client.rate_limit)
        return limits

    @classmethod
    def from_settings(cls, settings: Settings) -> Security:
        """Read the directory and the token key the settings name."""
        clients = load_clients(Path(settings.clients_file))
        if not clients.clients:
            log.warning(
                "no clients in %s: every request but health will be refused; "
                "create one with `bus clients add`",
                settings.clients_file,
            )
        key = load_or_create_key(Path(settings.token_key_file))
        return cls(
            clients=clients,
            tokens=TokenIssuer(key, settings.token_ttl_seconds),
            proxies=ProxyList(settings.trusted_proxies),
            certificate_header=settings.client_cert_header,
            throttle=Throttle.from_uri(settings.rate_limit_storage),
            client_limits=parse_limits(settings.client_rate_limit),
            failure_limits=parse_limits(settings.auth_failure_rate_limit),
        )


def _unauthorized(detail: str, *, error: str | None = None) -> Problem:
    challenge = _CHALLENGE["WWW-Authenticate"]
    if error is not None:
        challenge += f', error="{error}", error_description="{detail}"'
    return Problem(
        401, "Unauthorized", detail, kind="unauthorized", headers={"WWW-Authenticate": challenge}
    )


def forbidden(detail: str) -> Problem:
    """The answer to a known client asking for what its rights do not cover."""
    return Problem(403, "Forbidden", detail, kind="forbidden")


def _too_many(wait: float, detail: str) -> Problem:
    return Problem(
        429,
        "Too many requests",
        f"{detail}; retry in {wait:.0f} s",
        kind="rate-limited",
        headers={"Retry-After": str(int(wait))},
    )


def failure_key(request: Request, security: Security) -> str:
    """The key failed authentications are counted under: the caller's address (behind a
    trusted proxy, the one it forwards)."""
    peer = request.client.host if request.client else "unknown"
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded and peer in security.proxies:
        peer = forwarded.split(",")[0].strip()[:64]
    return f"auth-failure:{peer}"


async def authenticate(request: Request) -> AgencyClient:
    """The client calling, or 401 saying how to authenticate (429 past a rate limit)."""
    security: Security = request.app.state.security
    failures = failure_key(request, security)
    wait = await security.throttle.blocked(failures, security.failure_limits)
    if wait is not None:
        raise _too_many(wait, "too many failed authentications from this address")
    try:
        client = _identify(request, security)
        if client.signing_keys:
            await _check_signature(request, client)
    except Problem as refused:
        await security.throttle.spend(failures, security.failure_limits)
        raise refused
    wait = await security.throttle.spend(f"client:{client.id}", security.limits_of(client))
    if wait is not None:
        raise _too_many(wait, f"client {client.id} is over its rate limit")
    return client


async def _check_signature(request: Request, client: AgencyClient) -> None:
    """401 unless the request is signed by ``client``, fresh, and its nonce is new.

    The body is read here (under the size cap) to check its digest, and kept for the route.
    """
    settings: Settings = request.app.state.settings
    body = await read_body(request, max_bytes=settings.max_body_bytes)
    request._body = body  # Starlette serves a read body again from here to the route
    max_age = timedelta(seconds=settings.signature_max_age_seconds)
    try:
        signed = verify_request(
            request.method,
            str(request.url),
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw],
            body,
            key_id=client.id,
            keys=[public_key_from_text(key) for key in client.signing_keys],
            max_age=max_age,
        )
    except SignatureRefused as exc:
        raise _unauthorized(str(exc), error="invalid_signature") from exc
    engine = request.app.state.runtime.writer
    if not await first_use_of_nonce(engine, client.id, signed.nonce, signed.created, keep=max_age):
        raise _unauthorized(
            "this signed request was already received (its nonce is used): sign each request "
            "with a new nonce",
            error="replayed",
        )
    # The reply will name this request and be signed (bus.api.replies).
    setattr(request.state, REQUEST_HASH_STATE, request_hash(signed.signature))


def _identify(request: Request, security: Security) -> AgencyClient:
    """The client the request's credentials name, or 401."""
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("send Authorization: Bearer <token from /v1/oauth/token>")
        try:
            claims = security.tokens.verify(token.strip())
        except TokenError as exc:
            raise _unauthorized(str(exc), error="invalid_token") from exc
        client = security.clients.get(claims.client_id)
        if client is None or client.agency != claims.agency:
            raise _unauthorized("the token's client is no longer allowed", error="invalid_token")
        return client
    api_key = request.headers.get(API_KEY_HEADER)
    if api_key is not None:
        client = security.clients.by_secret(api_key.strip())
        if client is None:
            raise _unauthorized("the API key is not known to this bus")
        return client
    forwarded = request.headers.get(security.certificate_header)
    if forwarded is not None:
        peer = request.client.host if request.client else None
        if peer not in security.proxies:
            raise _unauthorized(
                f"{security.certificate_header} is only believed from a trusted proxy "
                "(BUS_TRUSTED_PROXIES)"
            )
        try:
            client = security.clients.by_certificate(fingerprint_of_header(forwarded))
        except CertificateError as exc:
            raise _unauthorized(str(exc)) from exc
        if client is None:
            raise _unauthorized("the client certificate is not registered with this bus")
        return client
    raise _unauthorized(
        "authenticate with Authorization: Bearer <token> (POST /v1/oauth/token), "
        f"{API_KEY_HEADER}, or a client certificate"
    )


Caller = Annotated[AgencyClient, Depends(authenticate)]
"""The authenticated client of a route."""


def require_operator(caller: Caller) -> AgencyClient:
    """The caller, if it is an operator; else 403."""
    if not caller.operator:
        raise forbidden(f"client {caller.id} is not an operator")
    return caller


def require_metrics(caller: Caller) -> AgencyClient:
    """The caller, if it may read the metrics (a monitoring client, or an operator); else 403."""
    if not caller.metrics and not caller.operator:
        raise forbidden(f"client {caller.id} may not read the metrics (metrics: true)")
    return caller


def require_read_all(caller: Caller) -> AgencyClient:
    """The caller, if it may read every dossier (portals, operators); else 403."""
    if caller.read is not ReadScope.ALL and not caller.operator:
        raise forbidden(f"client {caller.id} may read only its own agency's dossiers")
    return caller


def may_read_dossier(
    caller: AgencyClient,
    agencies: Iterable[str],
    step_connectors: Iterable[str],
    registry: ConnectorRegistry,
) -> bool:
    """Whether ``caller`` may read a dossier received or handled by ``agencies``, whose linkage
    run has steps at ``step_connectors``: its own agency's, those it acts in, or any with
    ``read: all``."""
    if caller.read is ReadScope.ALL or caller.operator:
        return True
    if caller.agency in set(agencies):
        return True
    return any(
        connector in registry.ids and registry.get(connector).config.agency == caller.agency
        for connector in step_connectors
    )


def require_subscription_rights(caller: AgencyClient, patterns: Iterable[str]) -> None:
    """403 unless every pattern is within one the caller may subscribe to."""
    refused = [p for p in patterns if not any(pattern_within(p, a) for a in caller.subscribe)]
    if refused:
        allowed = ", ".join(caller.subscribe) or "none"
        raise forbidden(
            f"client {caller.id} may not receive {', '.join(refused)} (allowed: {allowed})"
        )


async def require_readable_dossier(request: Request, caller: AgencyClient, code: str) -> None:
    """404 unless dossier ``code`` exists and ``caller`` may read it (existence is not told)."""
    runtime = request.app.state.runtime
    parties = await dossier_parties(runtime.engine, code)
    if parties is None or not may_read_dossier(
        caller,
        (parties.receiving_agency, parties.handling_agency),
        parties.step_connectors,
        runtime.registry,
    ):
        raise Problem(404, "Not found", f"no dossier {code} on this bus", kind="not-found")
