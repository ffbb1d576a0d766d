"""Short-lived access tokens: OAuth2 client credentials exchanged for an EdDSA-signed JWT.

A client posts its id and secret to ``POST /v1/oauth/token`` and gets a token valid for
``BUS_TOKEN_TTL_SECONDS``; every API process verifies it with the same Ed25519 key
(``BUS_TOKEN_KEY_FILE``), so tokens work across a cluster without a shared session store. The
token names the client and its agency; the rights are read from the directory on each request,
so a client removed from the directory loses access at once, not when its token expires.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bus.security.keyfiles import read_key, write_new_key

__all__ = ["TokenError", "TokenIssuer", "load_or_create_key"]

log = logging.getLogger(__name__)

ISSUER: Final = "lienthong-bus"
_ALGORITHM: Final = "EdDSA"
#: Clock difference tolerated between API processes, in seconds.
_LEEWAY: Final = 5


class TokenError(ValueError):
    """Raised when a token is not one this bus issued, or no longer valid; says which."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a valid token says."""

    client_id: str
    agency: str
    expires_at: datetime


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 key in ``path`` (PEM, PKCS#8); created, readable by its owner only, if absent.

    Several API processes must share one key: give them the same file.
    """
    if not path.exists():
        try:
            write_new_key(path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        else:
            log.info("created the token signing key %s", path)
    try:
        return read_key(path)
    except ValueError as exc:
        raise TokenError(str(exc)) from exc


class TokenIssuer:
    """Issues and verifies the bus's access tokens."""

    def __init__(self, key: Ed25519PrivateKey, ttl_seconds: float) -> None:
        self._key = key
        self._public = key.public_key()
        self._ttl = timedelta(seconds=ttl_seconds)

    @property
    def ttl_seconds(self) -> int:
        """How long a token lives."""
        return int(self._ttl.total_seconds())

    def issue(self, client_id: str, agency: str, now: datetime | None = None) -> str:
        """A token for ``client_id``, valid from ``now`` for the configured time."""
        issued = now or datetime.now(UTC)
        claims = {
            "iss": ISSUER,
            "aud": ISSUER,
            "sub": client_id,
            "agency": agency,
            "iat": issued,
            "nbf": issued,
            "exp": issued + self._ttl,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, self._key, algorithm=_ALGORITHM)

    def verify(self, token: str) -> TokenClaims:
        """The claims of ``token``, or :class:`TokenError` saying why it is refused."""
        try:
            claims = jwt.decode(
                token,
                self._public,
                algorithms=[_ALGORITHM],  # never "none", never a key-confusion HMAC
                audience=ISSUER,
                issuer=ISSUER,
                leeway=_LEEWAY,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenError("the token has expired: ask /v1/oauth/token for a new one") from exc
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"the token is not valid here: {exc}") from exc
        agency = claims.get("agency")
        if not isinstance(agency, str):
            raise TokenError("the token names no agency")
        return TokenClaims(
            client_id=str(claims["sub"]),
            agency=agency,
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )
