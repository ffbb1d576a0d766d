"""``POST /v1/oauth/token``: OAuth2 client credentials (RFC 6749 §4.4) for a short-lived token.

The client authenticates with its id and secret, in HTTP Basic (preferred, §2.3.1) or in the
form body, and gets an access token for ``Authorization: Bearer``. Errors use OAuth2's own
format (``{"error": "invalid_client"}``), which OAuth2 client libraries understand.
"""

from __future__ import annotations

import base64
import binascii
from typing import Final
from urllib.parse import parse_qs, unquote_plus

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from bus.api.auth import Security, failure_key
from bus.api.body import read_body

__all__ = ["router"]

router = APIRouter(prefix="/v1/oauth", tags=["auth"])

_FORM: Final = "application/x-www-form-urlencoded"
#: A token request is a few hundred bytes.
_MAX_BYTES: Final = 4096
_NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class TokenAnswer(BaseModel):
    """An access token (RFC 6749 §5.1)."""

    access_token: str = Field(description="Send it as Authorization: Bearer <token>")
    token_type: str = Field(description="Always Bearer")
    expires_in: int = Field(description="Seconds the token stays valid")


def _error(status: int, error: str, description: str) -> JSONResponse:
    headers = dict(_NO_STORE)
    if error == "invalid_client":
        headers["WWW-Authenticate"] = 'Basic realm="lienthong-bus"'
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers=headers
    )


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, separator, secret = decoded.partition(":")
    # §2.3.1: both parts are form-encoded before they are joined.
    return (unquote_plus(client_id), unquote_plus(secret)) if separator else None


@router.post(
    "/token",
    response_model=TokenAnswer,
    summary="Exchange client credentials for an access token",
    responses={
        400: {"description": "invalid_request or unsupported_grant_type (RFC 6749 §5.2)"},
        401: {"description": "invalid_client: unknown client or wrong secret"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                _FORM: {
                    "schema": {
                        "type": "object",
                        "required": ["grant_type"],
                        "properties": {
                            "grant_type": {"type": "string", "enum": ["client_credentials"]},
                            "client_id": {"type": "string"},
                            "client_secret": {"type": "string"},
                        },
                    }
                }
            },
        }
    },
)
async def issue_token(request: Request) -> JSONResponse:
    """Check the client's id and secret and answer a token valid for BUS_TOKEN_TTL_SECONDS."""
    security: Security = request.app.state.security
    failures = failure_key(request, security)
    wait = await security.throttle.blocked(failures, security.failure_limits)
    if wait is not None:
        slow = _error(429, "slow_down", "too many failed attempts from this address")
        slow.headers["Retry-After"] = str(int(wait))
        return slow
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != _FORM:
        return _error(400, "invalid_request", f"send the request as {_FORM}")
    body = await read_body(request, max_bytes=_MAX_BYTES)
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=bool(body), max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        return _error(400, "invalid_request", "the form is not readable")
    if any(len(values) > 1 for values in form.values()):
        return _error(400, "invalid_request", "a parameter is given more than once")
    fields = {name: values[0] for name, values in form.items()}
    if fields.get("grant_type") != "client_credentials":
        return _error(400, "unsupported_grant_type", "only client_credentials is offered")
    credentials = _basic_credentials(request)
    if credentials is None and "client_id" in fields:
        credentials = (fields["client_id"], fields.get("client_secret", ""))
    if credentials is None:
        return _error(401, "invalid_client", "give client_id and client_secret")
    client_id, secret = credentials
    client = security.clients.by_secret(secret)
    if client is None or client.id != client_id:
        await security.throttle.spend(failures, security.failure_limits)
        return _error(401, "invalid_client", "unknown client or wrong secret")
    answer = TokenAnswer(
        access_token=security.tokens.issue(client.id, client.agency),
        token_type="Bearer",
        expires_in=security.tokens.ttl_seconds,
    )
    return JSONResponse(answer.model_dump(), headers=_NO_STORE)
