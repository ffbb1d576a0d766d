"""The generic REST kit: what every connector to a JSON-over-HTTP partner needs, in one place.

:class:`RestClient` holds one ``httpx.AsyncClient`` per connector, built from its
:class:`~bus.connector.ConnectorConfig`: the endpoint, the timeout, a connection pool sized to the
calls in flight, the partner's authentication (none, bearer, basic, or a DVCQG-style session
login renewed when it expires), X-Road headers when the partner sits on a national exchange, and
a paging helper. :func:`translate_errors` is the one place where httpx errors and partner answers
become bus errors::

    httpx.TimeoutException                     → PartnerUnavailable  PARTNER_TIMEOUT
    httpx.TransportError (connect, network,
      protocol, proxy) and other request errors → PartnerUnavailable  PARTNER_UNREACHABLE
    HTTP 5xx, 408, 429, an unexpected 3xx       → PartnerUnavailable  HTTP_<code>
    other HTTP 4xx                              → PartnerRejected     HTTP_<code>
      … carrying a gateway error_code ≠ 0       → PartnerRejected     GATEWAY_<code>_<NAME>
    not JSON, not an object, undecodable        → PartnerUnavailable  MALFORMED_REPLY
    gateway error_code ≠ 0 with HTTP 2xx        → PartnerRejected     GATEWAY_<code>_<NAME>

A session partner that answers "session expired" (HTTP 401, ``error_code`` 100, or words to that
effect) is logged in to again, once, before any of this applies. Partner text in an error is cut
short and its identity numbers masked; passwords, tokens and sessions never reach a message or a
log line.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, Protocol

import httpx
import orjson

from bus.connector import (
    BasicAuth,
    BearerAuth,
    ConnectorConfig,
    NoAuth,
    SessionAuth,
    WsseAuth,
    XRoadIdentity,
)
from bus.errors import PartnerRejected, PartnerUnavailable, PermanentError
from bus.partner_clients import PartnerClients
from bus.security.outbound import partner_hooks, signed_partner_calls
from contracts import VN_TZ, mask_personal_numbers

__all__ = [
    "GATEWAY_ERRORS",
    "MAX_POOL_CONNECTIONS",
    "AuthStrategy",
    "Credentials",
    "MalformedReply",
    "RestClient",
    "RestReply",
    "SessionOptions",
    "translate_errors",
    "xroad_headers",
]

_log = logging.getLogger(__name__)

GATEWAY_ERRORS: Final[Mapping[int, str]] = {
    100: "AUTHEN_ERROR",
    101: "IP_DISALLOWED",
    106: "AGENCY_ID_INCORRECT",
    108: "PROVINCE_ID_INCORRECT",
    200: "RECORD_UNCOMPLETE",
    201: "RECORD_NOT_FOUND",
    302: "DATA_TYPE_INVALID",
    500: "DATA_INCORRECT",
}
"""Error codes seen on provincial gateways (``error_code`` in the answer; 0 is success)."""

MAX_POOL_CONNECTIONS: Final = 32
"""Most connections one connector keeps (one per client, see bus.partner_clients); calls beyond
this wait for a free connection."""

# 408 and 429 say "not now", not "never": retried like a 5xx.
_RETRYABLE_4XX: Final = frozenset({408, 429})
_MESSAGE_FIELDS: Final = ("message", "error_message", "moTa", "msg", "detail", "error")
_MAX_MESSAGE: Final = 300
# 9 digits (old identity card), 12 (CCCD), the typos in between and around, and phone numbers;
# dates (8 or 14 digits) stay readable.
_GATEWAY_CODE: Final = re.compile(r"-?\d{1,6}")
_CODE_LIMIT: Final = 1_000_000


class MalformedReply(ValueError):
    """Raised when a partner's answer is outside its protocol (not JSON, a missing field, …).

    Connectors raise it too, inside :func:`translate_errors`, when the answer's content cannot
    be read (e.g. its mapping fails): it becomes ``PartnerUnavailable`` ``MALFORMED_REPLY``.
    """


class _GatewayRefusal(Exception):
    """Internal: the gateway answered a non-zero ``error_code``."""

    def __init__(self, code: int, message: str | None, *, login: bool = False) -> None:
        self.code = code
        self.name = GATEWAY_ERRORS.get(code, "UNKNOWN")
        self.partner_message = message
        self.login = login
        super().__init__(f"error_code {code} {self.name}")


@contextlib.contextmanager
def translate_errors(where: str) -> Iterator[None]:
    """The one place where httpx errors and unusable answers become bus errors.

    ``where`` names the connector and the dossier (never personal data). Bus errors raised
    inside pass through unchanged.
    """
    try:
        yield
    except httpx.TimeoutException as exc:
        raise PartnerUnavailable(
            f"{where}: no answer in time ({type(exc).__name__})", fault_code="PARTNER_TIMEOUT"
        ) from exc
    except httpx.TransportError as exc:
        # Connect, read/write (network), protocol and proxy errors all stop this attempt only.
        raise PartnerUnavailable(
            f"{where}: connection failed ({type(exc).__name__}: {exc})",
            fault_code="PARTNER_UNREACHABLE",
        ) from exc
    except httpx.DecodingError as exc:
        raise PartnerUnavailable(
            f"{where}: unreadable answer ({type(exc).__name__}: {exc})",
            fault_code="MALFORMED_REPLY",
        ) from exc
    except httpx.HTTPStatusError as exc:
        code = exc.response.status_code
        message = (
            f"{where}: HTTP {code} on {exc.request.url.path}: {_partner_text(exc.response.content)}"
        )
        if 400 <= code < 500 and code not in _RETRYABLE_4XX:
            raise PartnerRejected(message, fault_code=f"HTTP_{code}") from exc
        raise PartnerUnavailable(message, fault_code=f"HTTP_{code}") from exc
    except httpx.RequestError as exc:
        # What is left (an invalid URL, too many redirects) also stops this attempt only.
        raise PartnerUnavailable(
            f"{where}: request failed ({type(exc).__name__}: {exc})",
            fault_code="PARTNER_UNREACHABLE",
        ) from exc
    except MalformedReply as exc:
        raise PartnerUnavailable(
            f"{where}: unreadable answer: {mask_personal_numbers(str(exc))}",
            fault_code="MALFORMED_REPLY",
        ) from exc
    except _GatewayRefusal as exc:
        what = "login refused" if exc.login else "refused"
        reason = f": {exc.partner_message}" if exc.partner_message else ""
        raise PartnerRejected(
            f"{where}: {what}: error_code {exc.code} {exc.name}{reason}",
            fault_code=f"GATEWAY_{exc.code}_{exc.name}",
        ) from exc


# --- answers -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RestReply:
    """A partner's accepted answer: its JSON body and what the transaction log records."""

    status_code: int
    body: Any
    request_size: int
    response_size: int
    sent_at: datetime
    answered_at: datetime
    #: Whether the session was refused as expired and the call repeated after a new login.
    session_renewed: bool = False


_NOT_JSON: Final = object()


def _parse(content: bytes) -> Any:
    """The answer as JSON, or ``_NOT_JSON``."""
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return _NOT_JSON


def _snippet(content: bytes, limit: int = 120) -> str:
    text = content[:limit].decode("utf-8", errors="replace")
    return repr(mask_personal_numbers(text) + ("…" if len(content) > limit else ""))


def _message_of(body: Any) -> str | None:
    """The partner's own words in a JSON answer, masked and cut short."""
    if not isinstance(body, dict):
        return None
    for name in _MESSAGE_FIELDS:
        text = body.get(name)
        if isinstance(text, str) and text.strip():
            return mask_personal_numbers(text.strip()[:_MAX_MESSAGE])
    return None


def _partner_text(content: bytes) -> str:
    """The partner's words from an error answer: its message when JSON, else a snippet."""
    parsed = _parse(content)
    message = _message_of(parsed) if parsed is not _NOT_JSON else None
    return message if message is not None else _snippet(content)


def _gateway_code(body: Any, gateway_field: str | None) -> int | None:
    """The gateway's ``error_code`` (0 is success), None when the answer carries none."""
    if gateway_field is None or not isinstance(body, dict) or gateway_field not in body:
        return None
    value = body[gateway_field]
    # bool is an int in Python; True must not pass for error 1. Six digits at most, so that a
    # fault code built from it stays short enough for the transaction log.
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and -_CODE_LIMIT < value < _CODE_LIMIT
    ):
        return value
    if isinstance(value, str) and _GATEWAY_CODE.fullmatch(value.strip()):
        return int(value)
    raise MalformedReply(
        f"{gateway_field} is not a number: {mask_personal_numbers(repr(value)[:60])}"
    )


def _read_answer(
    response: httpx.Response, parsed: Any, *, expect_object: bool, gateway_field: str | None
) -> Any:
    """Check an answer; raise HTTPStatusError, MalformedReply or _GatewayRefusal."""
    status = response.status_code
    if 400 <= status < 500 and status not in _RETRYABLE_4XX and parsed is not _NOT_JSON:
        # A refusal with the gateway's own code says more than the bare HTTP status.
        with contextlib.suppress(MalformedReply):
            code = _gateway_code(parsed, gateway_field)
            if code:
                raise _GatewayRefusal(code, _message_of(parsed))
    response.raise_for_status()
    if parsed is _NOT_JSON:
        raise MalformedReply(f"answer is not JSON: {_snippet(response.content)}")
    if expect_object and not isinstance(parsed, dict):
        raise MalformedReply(f"answer is not a JSON object: {_snippet(response.content)}")
    code = _gateway_code(parsed, gateway_field)
    if code:
        raise _GatewayRefusal(code, _message_of(parsed))
    return parsed


def _dig(body: Any, path: str | None) -> Any:
    """``a.b.c`` in nested JSON objects; the body itself for None; None when absent."""
    if path is None:
        return body
    for part in path.split("."):
        if not isinstance(body, dict):
            return None
        body = body.get(part)
    return body


# --- authentication ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Credentials:
    """What one call carries to authenticate: headers, JSON body fields, the session used."""

    headers: Mapping[str, str] = field(default_factory=dict)
    body: Mapping[str, str] = field(default_factory=dict)
    session: str | None = None


class AuthStrategy(Protocol):
    """How a connector authenticates its calls to the partner."""

    #: Whether a refused session can be renewed by logging in again.
    renewable: bool

    async def credentials(self, http: httpx.AsyncClient) -> Credentials:
        """The credentials of the next call; may log in first."""
        ...

    def renew(self, used: Credentials) -> None:
        """Forget the session that ``used`` carried, so the next call logs in again."""
        ...


def _secret(environ: Mapping[str, str], name: str, what: str) -> str:
    """A secret from the environment; a missing one is a configuration error, never guessed."""
    value = environ.get(name, "")
    if not value:
        # Permanent: parked with this reason, replayed once the operator has set it.
        raise PermanentError(
            f"{what}: environment variable {name} is not set", fault_code="CREDENTIALS_MISSING"
        )
    return value


class _StaticAuth:
    """None, bearer or basic: the same headers on every call, nothing to renew."""

    renewable = False

    def __init__(self, auth: NoAuth | BearerAuth | BasicAuth, environ: Mapping[str, str]) -> None:
        self._auth = auth
        self._environ = environ

    async def credentials(self, http: httpx.AsyncClient) -> Credentials:
        auth = self._auth
        if isinstance(auth, BearerAuth):
            token = _secret(self._environ, auth.token_env, "bearer token")
            return Credentials(headers={"Authorization": f"Bearer {token}"})
        if isinstance(auth, BasicAuth):
            password = _secret(self._environ, auth.password_env, "basic password")
            pair = base64.b64encode(f"{auth.username}:{password}".encode()).decode("ascii")
            return Credentials(headers={"Authorization": f"Basic {pair}"})
        return Credentials()

    def renew(self, used: Credentials) -> None:
        return None


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """Where a session partner puts the session, and how it says that one has expired.

    The defaults are the DVCQG way: the login answers ``{"session": ...}`` and every call posts
    ``{"session": ..., ...}``; an expired session is HTTP 401 or ``error_code`` 100.
    """

    #: Field of the login answer that holds the session.
    token_field: str = "session"
    #: JSON body field each call carries the session in; None to send it only as a header.
    body_field: str | None = "session"
    #: Header each call carries the session in (e.g. ``Authorization``); None for none.
    header: str | None = None
    #: Written before the session in ``header`` (e.g. ``"Bearer "``).
    header_prefix: str = ""
    username_field: str = "username"
    password_field: str = "password"
    #: HTTP statuses that mean "log in again".
    expired_statuses: frozenset[int] = frozenset({401})
    #: Gateway error codes that mean "log in again".
    expired_codes: frozenset[int] = frozenset({100})
    #: Words of an error answer that mean "log in again", whatever its code.
    expired_words: re.Pattern[str] = re.compile(
        r"session[\W_]+(?:\w+\W+){0,3}?(?:expired|invalid|timed?\W*out)|invalid\W+session"
        r"|phiên\W+(?:\w+\W+){0,3}?hết\s+hạn",
        re.IGNORECASE,
    )


class _SessionLogin:
    """Logs in once, shares the session between concurrent calls, renews it when refused."""

    renewable = True

    def __init__(
        self,
        auth: SessionAuth,
        options: SessionOptions,
        *,
        connector_id: str,
        environ: Mapping[str, str],
        clock: Callable[[], float],
        extra_headers: Callable[[], dict[str, str]],
        gateway_field: str | None,
    ) -> None:
        self._auth = auth
        self._options = options
        self._connector_id = connector_id
        self._environ = environ
        self._clock = clock
        self._extra_headers = extra_headers
        self._gateway_field = gateway_field
        self._lock = asyncio.Lock()
        self._session: str | None = None
        self._expires_at = 0.0
        #: Logins made so far (for tests and metrics).
        self.logins = 0

    def _current(self) -> str | None:
        if self._session is not None and self._clock() < self._expires_at:
            return self._session
        return None

    async def credentials(self, http: httpx.AsyncClient) -> Credentials:
        session = self._current()
        if session is None:
            # One login for every call waiting here: the others find its session on entry.
            async with self._lock:
                session = self._current()
                if session is None:
                    session = await self._login(http)
        options = self._options
        headers = {options.header: f"{options.header_prefix}{session}"} if options.header else {}
        body = {options.body_field: session} if options.body_field else {}
        return Credentials(headers=headers, body=body, session=session)

    def renew(self, used: Credentials) -> None:
        # Only the session that was refused: a call that comes back late with an old session
        # must not throw away the one another call has just logged in for.
        if used.session is not None and used.session == self._session:
            self._session = None

    async def _login(self, http: httpx.AsyncClient) -> str:
        auth, options = self._auth, self._options
        password = _secret(self._environ, auth.password_env, "session login password")
        content = orjson.dumps(
            {options.username_field: auth.username, options.password_field: password}
        )
        headers = {
            **self._extra_headers(),
            **auth.headers,
            "Content-Type": "application/json; charset=utf-8",
        }
        started = self._clock()
        response = await http.post(auth.login_path, content=content, headers=headers)
        parsed = _parse(response.content)
        try:
            body = _read_answer(
                response, parsed, expect_object=True, gateway_field=self._gateway_field
            )
        except _GatewayRefusal as exc:
            exc.login = True
            raise
        session = body.get(options.token_field)
        if not isinstance(session, str) or not session:
            raise MalformedReply(f"login answer has no {options.token_field!r}")
        self._session = session
        self._expires_at = started + auth.ttl_seconds
        self.logins += 1
        # The user name is not a secret; the password and the session never reach a log.
        _log.info("%s: logged in as %s", self._connector_id, auth.username)
        return session

    def refused(self, response: httpx.Response, parsed: Any) -> bool:
        """Whether the partner refused the session itself (expired, unknown)."""
        options = self._options
        if response.status_code in options.expired_statuses:
            return True
        if parsed is _NOT_JSON or not isinstance(parsed, dict):
            return False
        try:
            code = _gateway_code(parsed, self._gateway_field)
        except MalformedReply:
            return False
        if code is not None and code in options.expired_codes:
            return True
        if code or response.status_code >= 400:
            message = _message_of(parsed)
            return message is not None and options.expired_words.search(message) is not None
        return False


# --- the client ----------------------------------------------------------------------------


def xroad_headers(identity: XRoadIdentity | None, issue: str | None) -> dict[str, str]:
    """X-Road REST headers: client, a fresh message id, the user, the issue (dossier code)."""
    if identity is None:
        return {}
    headers = {"X-Road-Client": identity.client, "X-Road-Id": uuid.uuid4().hex}
    if identity.user_id is not None:
        headers["X-Road-UserId"] = identity.user_id
    if issue is not None:
        headers["X-Road-Issue"] = issue
    return headers


class RestClient:
    """One connector's HTTP client to its partner, with auth, X-Road headers and paging.

    ``session`` says where a session partner wants its session (the DVCQG way by default);
    ``gateway_field`` names the answer field with the gateway's error code (None: no such
    field); ``environ`` is where secrets are read (``os.environ`` by default).
    """

    def __init__(
        self,
        config: ConnectorConfig,
        *,
        session: SessionOptions | None = None,
        gateway_field: str | None = "error_code",
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._gateway_field = gateway_field
        pool = min(config.concurrency, MAX_POOL_CONNECTIONS)
        env = os.environ if environ is None else environ
        signing = signed_partner_calls(config, env)
        # ``pool`` one-connection clients lent a call at a time (bus.partner_clients says why).
        self._clients = PartnerClients.one_connection(
            pool, timeout_seconds=config.timeout_seconds, name=config.id,
            base_url=str(config.endpoint), transport=transport, event_hooks=partner_hooks(signing),
            headers={"Accept": "application/json", **(headers or {})},
        )  # fmt: skip
        auth = config.auth
        self._session: _SessionLogin | None = None
        self.auth: AuthStrategy
        if isinstance(auth, SessionAuth):
            self._session = _SessionLogin(
                auth,
                session or SessionOptions(),
                connector_id=config.id,
                environ=env,
                clock=clock,
                extra_headers=lambda: xroad_headers(config.xroad, None),
                gateway_field=gateway_field,
            )
            self.auth = self._session
        elif isinstance(auth, WsseAuth):
            raise ValueError(
                f"connector {config.id}: WS-Security belongs to SOAP partners, not the REST kit"
            )
        else:
            self.auth = _StaticAuth(auth, env)

    @property
    def logins(self) -> int:
        """Session logins made so far (0 for partners without sessions)."""
        return 0 if self._session is None else self._session.logins

    def where(self, issue: str | None = None) -> str:
        """How errors name this connector and dossier."""
        return self.config.id if issue is None else f"{self.config.id}, dossier {issue}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        issue: str | None = None,
        expect_object: bool = True,
    ) -> RestReply:
        """Call the partner; return its accepted answer or raise a classified bus error.

        The body is ``json`` (an object, merged with a session's body fields) or ready-made
        ``content`` whose ``Content-Type`` the caller sets. ``issue`` is the dossier code the
        call is about (the ``X-Road-Issue`` header and error messages). A session refused as
        expired is renewed and the call repeated, once.
        """
        if json is not None and content is not None:
            raise ValueError("pass json= or content=, not both")
        with translate_errors(self.where(issue)):
            async with self._clients.lend() as http:
                credentials = await self.auth.credentials(http)
                response, parsed, sent, sent_at, answered_at = await self._send(
                    http, method, path, json, content, params, headers, issue, credentials
                )
                renewed = False
                if self._session is not None and self._session.refused(response, parsed):
                    _log.info("%s: session refused on %s; logging in again", self.config.id, path)
                    self._session.renew(credentials)
                    credentials = await self.auth.credentials(http)
                    response, parsed, sent, sent_at, answered_at = await self._send(
                        http, method, path, json, content, params, headers, issue, credentials
                    )
                    renewed = True
            body = _read_answer(
                response, parsed, expect_object=expect_object, gateway_field=self._gateway_field
            )
        return RestReply(
            status_code=response.status_code,
            body=body,
            request_size=len(sent),
            response_size=len(response.content),
            sent_at=sent_at,
            answered_at=answered_at,
            session_renewed=renewed,
        )

    async def _send(
        self,
        http: httpx.AsyncClient,
        method: str,
        path: str,
        json: Mapping[str, Any] | None,
        content: bytes | None,
        params: Mapping[str, str | int] | None,
        headers: Mapping[str, str] | None,
        issue: str | None,
        credentials: Credentials,
    ) -> tuple[httpx.Response, Any, bytes, datetime, datetime]:
        all_headers = {
            **xroad_headers(self.config.xroad, issue),
            **(headers or {}),
            **credentials.headers,
        }
        if json is not None:
            content = orjson.dumps({**credentials.body, **json})
            all_headers["Content-Type"] = "application/json; charset=utf-8"
        elif credentials.body and not credentials.headers:
            raise ValueError(
                f"connector {self.config.id}: the session travels in the JSON body; pass json="
            )
        content = content or b""
        sent_at = datetime.now(VN_TZ)
        response = await http.request(
            method, path, content=content or None, params=params, headers=all_headers
        )
        answered_at = datetime.now(VN_TZ)
        return response, _parse(response.content), content, sent_at, answered_at

    async def pages(
        self,
        path: str,
        *,
        method: Literal["GET", "POST"] = "GET",
        query: Mapping[str, str | int] | None = None,
        json: Mapping[str, Any] | None = None,
        page_param: str = "page",
        size_param: str = "size",
        page_size: int = 100,
        first_page: int = 1,
        items: str | None = "items",
        total: str | None = "total",
        issue: str | None = None,
        max_pages: int = 1000,
    ) -> AsyncIterator[list[Any]]:
        """Yield the items of each page until a short or empty page, or ``total`` items.

        Paging parameters go in the query for GET and in the JSON body for POST. ``items`` and
        ``total`` are dotted paths in the answer (``items=None``: the answer is the list).
        A partner still sending full pages after ``max_pages`` is ``TOO_MANY_PAGES``.
        """
        where = self.where(issue)
        seen = 0
        for index in range(max_pages):
            paging = {page_param: first_page + index, size_param: page_size}
            if method == "GET":
                reply = await self.request(
                    "GET",
                    path,
                    params={**(query or {}), **paging},
                    issue=issue,
                    expect_object=items is not None,
                )
            else:
                reply = await self.request(
                    "POST",
                    path,
                    json={**(json or {}), **paging},
                    params=query,
                    issue=issue,
                    expect_object=items is not None,
                )
            with translate_errors(where):
                found = _dig(reply.body, items)
                if not isinstance(found, list):
                    raise MalformedReply(f"page {first_page + index}: {items} is not a list")
                expected = _dig(reply.body, total) if total is not None else None
                if expected is not None and (
                    not isinstance(expected, int) or isinstance(expected, bool)
                ):
                    raise MalformedReply(f"page {first_page + index}: {total} is not a number")
            if not found:
                return
            seen += len(found)
            yield found
            if len(found) < page_size or (expected is not None and seen >= expected):
                return
        raise PartnerUnavailable(
            f"{where}: {path} still sends full pages after {max_pages} pages",
            fault_code="TOO_MANY_PAGES",
        )

    async def aclose(self) -> None:
        """Close the partner's connections."""
        await self._clients.aclose()
