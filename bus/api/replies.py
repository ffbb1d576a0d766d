"""Signed replies: the bus's answer to a signed request names it and is signed by the bus.

A request verified as signed (:mod:`bus.api.auth`) leaves its request hash in the request's
state; this ASGI middleware then holds the reply until its body is complete, adds
``Request-Hash`` and signs status, request hash and body digest with the bus's key
(``BUS_SIGNING_KEY_FILE``, key id ``BUS_SIGNING_KEY_ID``; public at ``GET /v1/keys``), so the
partner holds proof of what the bus answered to which of its requests. Other replies, and event
streams (which never complete), pass through untouched.
"""

from __future__ import annotations

from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bus.security.signing import REQUEST_HASH_HEADER, sign_response

__all__ = ["REQUEST_HASH_STATE", "SignedReplies"]

REQUEST_HASH_STATE: Final = "request_hash"
"""The request-state key under which authentication leaves a signed request's hash."""


class SignedReplies:
    """ASGI middleware signing the replies to signed requests."""

    def __init__(self, app: ASGIApp, *, key_id: str, key: Ed25519PrivateKey) -> None:
        self.app = app
        self._key_id = key_id
        self._key = key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        chunks: list[bytes] = []

        async def sign_when_complete(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                hashed = scope.get("state", {}).get(REQUEST_HASH_STATE)
                if hashed is None or _is_stream(message):
                    await send(message)
                else:
                    held = {**message, "headers": [*message["headers"], _header(hashed)]}
                return
            if held is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            lines = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in held["headers"]]
            added = sign_response(held["status"], lines, body, key_id=self._key_id, key=self._key)
            held["headers"] = [*held["headers"], *(_header(v, n) for n, v in added.items())]
            await send(held)
            await send({"type": "http.response.body", "body": body, "more_body": False})

        await self.app(scope, receive, sign_when_complete)


def _header(value: str, name: str = REQUEST_HASH_HEADER) -> tuple[bytes, bytes]:
    return name.lower().encode("latin-1"), value.encode("latin-1")


def _is_stream(start: Message) -> bool:
    return any(
        name.lower() == b"content-type" and value.startswith(b"text/event-stream")
        for name, value in start["headers"]
    )
