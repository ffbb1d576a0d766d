"""bus.rest: the REST kit against a DVCQG-style gateway over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from bus.connector import (
    BasicAuth,
    BearerAuth,
    ConnectorConfig,
    NoAuth,
    SessionAuth,
    WsseAuth,
    XRoadIdentity,
)
from bus.errors import BusError, PartnerRejected, PartnerUnavailable, PermanentError
from bus.rest import (
    GATEWAY_ERRORS,
    MAX_POOL_CONNECTIONS,
    MalformedReply,
    RestClient,
    SessionOptions,
    translate_errors,
)
from bus.testing import serve_app
from contracts import mask_personal_numbers

PASSWORD = "s3cret-Pa55"
SECRETS = {"GW_PASSWORD": PASSWORD, "GW_TOKEN": "tok-123", "GW_BASIC": "basic-pw"}
DOSSIER = "000.00.10.H12-240315-0001"


@dataclass
class Gateway:
    """A DVCQG-style gateway's state: sessions, switches and exact counters (thread-safe)."""

    password: str = PASSWORD
    latency: float = 0.0
    login_latency: float = 0.0
    #: How a refused session is answered: "code" (error_code 100), "401", "words" or "never".
    refuse_as: str = "code"
    #: Refuse every session, even a fresh one.
    always_refuse: bool = False
    login_answer: dict[str, Any] | None = None
    items: int = 0
    send_total: bool = False
    sessions: set[str] = field(default_factory=set)
    logins: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0
    in_flight: int = 0
    most_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def expire_all(self) -> None:
        """End every session, as a gateway restart would."""
        with self.lock:
            self.sessions.clear()


def create_gateway_app(gw: Gateway) -> FastAPI:
    """A small gateway: login, an echoing call, paged items, and sick answers on demand."""
    app = FastAPI()

    def refusal() -> Response:
        if gw.refuse_as == "401":
            return JSONResponse({"message": "Unauthorized"}, status_code=401)
        if gw.refuse_as == "words":
            return JSONResponse({"error_code": 999, "message": "Your session has expired"})
        return JSONResponse({"error_code": 100, "message": "Phiên làm việc đã hết hạn"})

    @app.post("/login")
    async def login(request: Request) -> Response:
        body = await request.json()
        if gw.login_latency:
            await asyncio.sleep(gw.login_latency)
        with gw.lock:
            gw.logins.append({"body": body, "dstcode": request.headers.get("dstcode")})
            number = len(gw.logins)
        if gw.login_answer is not None:
            return JSONResponse(gw.login_answer)
        if body.get("username") != "bus" or body.get("password") != gw.password:
            return JSONResponse({"error_code": 100, "message": "Sai tên đăng nhập hoặc mật khẩu"})
        session = f"sess-{number}-xyz"
        with gw.lock:
            gw.sessions.add(session)
        return JSONResponse({"error_code": 0, "session": session})

    @app.api_route("/call", methods=["GET", "POST"])
    async def call(request: Request) -> Response:
        raw = await request.body()
        body = await request.json() if raw else {}
        with gw.lock:
            gw.in_flight += 1
            gw.most_in_flight = max(gw.most_in_flight, gw.in_flight)
            gw.calls.append({"body": body, "headers": dict(request.headers)})
        try:
            if gw.latency:
                await asyncio.sleep(gw.latency)
            session = body.get("session") or request.headers.get("x-session")
            if gw.refuse_as != "never":
                with gw.lock:
                    valid = session in gw.sessions and not gw.always_refuse
                    if not valid:
                        gw.refused += 1
                if not valid:
                    return refusal()
            return JSONResponse({"error_code": 0, "message": "OK", "echo": body.get("n")})
        finally:
            with gw.lock:
                gw.in_flight -= 1

    @app.api_route("/items", methods=["GET", "POST"])
    async def items(request: Request) -> Response:
        if request.method == "POST":
            source = await request.json()
        else:
            source = dict(request.query_params)
        with gw.lock:
            gw.calls.append({"body": source, "headers": dict(request.headers)})
        page, size = int(source["page"]), int(source["size"])
        start = (page - 1) * size
        answer: dict[str, Any] = {
            "error_code": 0,
            "data": {"items": list(range(start, min(start + size, gw.items)))},
        }
        if gw.send_total:
            answer["data"]["total"] = gw.items
        return JSONResponse(answer)

    @app.get("/endless")
    async def endless(page: int, size: int) -> Response:
        return JSONResponse({"items": [page] * size})

    @app.get("/status/{code}")
    async def status(code: int, error_code: int | None = None, message: str = "lỗi") -> Response:
        body: dict[str, Any] = {"message": message}
        if error_code is not None:
            body["error_code"] = error_code
        headers = {"Location": "/elsewhere"} if 300 <= code < 400 else None
        return JSONResponse(body, status_code=code, headers=headers)

    @app.get("/gateway/{code}")
    async def gateway(code: str) -> Response:
        value: int | str = int(code) if code.isdigit() else code
        return JSONResponse({"error_code": value, "message": "Lỗi CCCD 001192054321"})

    @app.get("/raw/{kind}")
    async def raw(kind: str) -> Response:
        if kind == "html":
            return Response("<html>502 Bad Gateway</html>", media_type="text/html")
        if kind == "list":
            return JSONResponse([1, 2])
        if kind == "empty":
            return Response(b"", media_type="application/json")
        if kind == "gzip":
            return Response(
                b"not gzip at all",
                media_type="application/json",
                headers={"Content-Encoding": "gzip"},
            )
        if kind == "bool-code":
            return JSONResponse({"error_code": True})
        if kind == "huge-code":
            return JSONResponse({"error_code": 10**12})
        return JSONResponse({"error_code": "abc"})

    @app.get("/hang")
    async def hang(request: Request) -> Response:
        for _ in range(600):  # 30 s at most, far above any timeout used here
            if await request.is_disconnected():
                break
            await asyncio.sleep(0.05)
        return Response(status_code=204)

    @app.get("/echo")
    async def echo(request: Request) -> Response:
        with gw.lock:
            gw.calls.append({"body": {}, "headers": dict(request.headers)})
        return JSONResponse({"error_code": 0})

    return app


@pytest.fixture(scope="module")
def gateway_box() -> list[Gateway]:
    """Holds the gateway state of the current test (the app reads it through the box)."""
    return [Gateway()]


@pytest.fixture(scope="module")
def base_url(gateway_box: list[Gateway]) -> Iterator[str]:
    """The gateway app served on a free loopback port for the whole module."""

    class Proxy:
        def __getattr__(self, name: str) -> Any:
            return getattr(gateway_box[0], name)

        def __setattr__(self, name: str, value: Any) -> None:
            setattr(gateway_box[0], name, value)

    with serve_app(create_gateway_app(Proxy())) as url:  # type: ignore[arg-type]
        yield url


@pytest.fixture
def gw(gateway_box: list[Gateway], base_url: str) -> Gateway:
    """A fresh gateway state for this test."""
    gateway_box[0] = Gateway()
    return gateway_box[0]


def make_config(base_url: str, **overrides: Any) -> ConnectorConfig:
    """A REST connector config pointed at the test gateway."""
    values: dict[str, Any] = {
        "id": "gateway_test",
        "kind": "rest",
        "agency": "000.00.00.H12",
        "title": "Test gateway",
        "endpoint": base_url,
        "timeout_seconds": 5,
        "concurrency": 8,
        **overrides,
    }
    return ConnectorConfig.model_validate(values)


def session_auth(ttl: float = 1800) -> SessionAuth:
    """Session login at /login as user "bus", with the dstcode header."""
    return SessionAuth(
        type="session",
        login_path="/login",
        username="bus",
        password_env="GW_PASSWORD",
        headers={"dstcode": "H12"},
        ttl_seconds=ttl,
    )


@pytest.fixture
async def plain(base_url: str, gw: Gateway) -> AsyncIterator[RestClient]:
    """A client without credentials."""
    client = RestClient(make_config(base_url), environ=SECRETS)
    yield client
    await client.aclose()


@pytest.fixture
async def session_client(base_url: str, gw: Gateway) -> AsyncIterator[RestClient]:
    """A client that logs in with a session, the DVCQG way."""
    client = RestClient(make_config(base_url, auth=session_auth()), environ=SECRETS)
    yield client
    await client.aclose()


async def fail(client: RestClient, path: str, method: str = "GET") -> BusError:
    """The bus error a call raises."""
    with pytest.raises(BusError) as caught:
        await client.request(method, path, issue=DOSSIER)
    return caught.value


# --- authentication ------------------------------------------------------------------------


async def test_no_auth_sends_no_credentials(plain: RestClient, gw: Gateway) -> None:
    """Without auth a call carries no Authorization header and no session."""
    gw.refuse_as = "never"
    reply = await plain.request("POST", "/call", json={"n": 1})
    assert reply.body == {"error_code": 0, "message": "OK", "echo": 1}
    (call,) = gw.calls
    assert "authorization" not in call["headers"]
    assert call["body"] == {"n": 1}
    assert plain.logins == 0


async def test_bearer_token_comes_from_the_environment(base_url: str, gw: Gateway) -> None:
    """A bearer partner gets the token of the configured environment variable."""
    config = make_config(base_url, auth=BearerAuth(type="bearer", token_env="GW_TOKEN"))
    client = RestClient(config, environ=SECRETS)
    try:
        await client.request("GET", "/echo")
    finally:
        await client.aclose()
    assert gw.calls[0]["headers"]["authorization"] == "Bearer tok-123"


async def test_basic_auth_sends_user_and_password(base_url: str, gw: Gateway) -> None:
    """A basic-auth partner gets base64(username:password) from the environment."""
    auth = BasicAuth(type="basic", username="lgsp", password_env="GW_BASIC")
    client = RestClient(make_config(base_url, auth=auth), environ=SECRETS)
    try:
        await client.request("GET", "/echo")
    finally:
        await client.aclose()
    expected = base64.b64encode(b"lgsp:basic-pw").decode()
    assert gw.calls[0]["headers"]["authorization"] == f"Basic {expected}"


@pytest.mark.parametrize(
    "auth",
    [
        BearerAuth(type="bearer", token_env="GW_UNSET"),
        BasicAuth(type="basic", username="lgsp", password_env="GW_UNSET"),
        session_auth().model_copy(update={"password_env": "GW_UNSET"}),
    ],
)
async def test_missing_secret_is_permanent_before_any_call(
    base_url: str, gw: Gateway, auth: Any
) -> None:
    """An unset secret variable is a permanent CREDENTIALS_MISSING naming it; nothing is sent."""
    client = RestClient(make_config(base_url, auth=auth), environ=SECRETS)
    try:
        with pytest.raises(PermanentError) as caught:
            await client.request("POST", "/call", json={})
    finally:
        await client.aclose()
    assert caught.value.fault_code == "CREDENTIALS_MISSING"
    assert "GW_UNSET" in str(caught.value)
    assert gw.calls == [] and gw.logins == []


async def test_bearer_refused_is_rejected_without_retry(base_url: str, gw: Gateway) -> None:
    """A 401 to a static bearer token is PartnerRejected HTTP_401 after exactly one call."""
    gw.refuse_as = "401"
    config = make_config(base_url, auth=BearerAuth(type="bearer", token_env="GW_TOKEN"))
    client = RestClient(config, environ=SECRETS)
    try:
        with pytest.raises(PartnerRejected) as caught:
            await client.request("POST", "/call", json={})
    finally:
        await client.aclose()
    assert caught.value.fault_code == "HTTP_401"
    assert len(gw.calls) == 1


def test_wsse_auth_is_not_for_rest(base_url: str) -> None:
    """A REST client refuses WS-Security auth, which belongs to SOAP partners."""
    auth = WsseAuth(type="wsse", username="u", password_env="GW_PASSWORD")
    with pytest.raises(ValueError, match="SOAP"):
        RestClient(make_config(base_url, auth=auth))


async def test_session_login_then_session_in_every_body(
    session_client: RestClient, gw: Gateway
) -> None:
    """The first call logs in with {username, password} and dstcode; calls post the session."""
    for n in (1, 2, 3):
        reply = await session_client.request("POST", "/call", json={"n": n})
        assert reply.body["echo"] == n
        assert not reply.session_renewed
    (login,) = gw.logins
    assert login == {"body": {"username": "bus", "password": PASSWORD}, "dstcode": "H12"}
    assert [call["body"]["session"] for call in gw.calls] == ["sess-1-xyz"] * 3
    assert session_client.logins == 1


async def test_session_can_travel_in_a_header(base_url: str, gw: Gateway) -> None:
    """With SessionOptions(header=...), the session is a header and the body stays clean."""
    options = SessionOptions(body_field=None, header="X-Session")
    config = make_config(base_url, auth=session_auth())
    client = RestClient(config, session=options, environ=SECRETS)
    try:
        await client.request("POST", "/call", json={"n": 1})
    finally:
        await client.aclose()
    (call,) = gw.calls
    assert call["headers"]["x-session"] == "sess-1-xyz"
    assert "session" not in call["body"]


async def test_body_session_needs_a_json_body(session_client: RestClient, gw: Gateway) -> None:
    """A call without a JSON body cannot carry a body session: a ValueError, not a silent call."""
    with pytest.raises(ValueError, match="JSON body"):
        await session_client.request("GET", "/call")
    assert gw.calls == []


async def test_concurrent_first_calls_log_in_once(session_client: RestClient, gw: Gateway) -> None:
    """Eight calls started together share one login."""
    gw.latency = gw.login_latency = 0.05
    await asyncio.gather(*(session_client.request("POST", "/call", json={}) for _ in range(8)))
    assert len(gw.logins) == 1
    assert len(gw.calls) == 8


@pytest.mark.parametrize("refuse_as", ["code", "401", "words"])
async def test_expired_session_is_renewed_once_for_concurrent_calls(
    session_client: RestClient, gw: Gateway, refuse_as: str
) -> None:
    """Calls refused with an expired session (code 100, 401 or words) share one new login."""
    gw.refuse_as = refuse_as
    await session_client.request("POST", "/call", json={})
    gw.expire_all()
    gw.latency = gw.login_latency = 0.05

    replies = await asyncio.gather(
        *(session_client.request("POST", "/call", json={"n": n}) for n in range(8))
    )

    assert [reply.body["echo"] for reply in replies] == list(range(8))
    assert len(gw.logins) == 2
    assert gw.refused >= 2  # several calls really did come back with the old session
    assert sum(reply.session_renewed for reply in replies) == gw.refused
    assert {call["body"]["session"] for call in gw.calls[-8:]} == {"sess-2-xyz"}


async def test_renewal_happens_once_then_the_refusal_stands(
    session_client: RestClient, gw: Gateway
) -> None:
    """A session refused again right after a new login is GATEWAY_100_AUTHEN_ERROR, no loop."""
    gw.always_refuse = True
    with pytest.raises(PartnerRejected) as caught:
        await session_client.request("POST", "/call", json={}, issue=DOSSIER)
    assert caught.value.fault_code == "GATEWAY_100_AUTHEN_ERROR"
    assert DOSSIER in str(caught.value)
    assert len(gw.logins) == 2
    assert len(gw.calls) == 2


async def test_renewal_refused_as_401_is_http_401(session_client: RestClient, gw: Gateway) -> None:
    """A 401 that persists after the new login is PartnerRejected HTTP_401."""
    gw.always_refuse = True
    gw.refuse_as = "401"
    with pytest.raises(PartnerRejected) as caught:
        await session_client.request("POST", "/call", json={})
    assert caught.value.fault_code == "HTTP_401"
    assert len(gw.logins) == 2


async def test_session_is_renewed_after_its_ttl(base_url: str, gw: Gateway) -> None:
    """Once ttl_seconds have passed, the next call logs in first instead of being refused."""
    now = [1000.0]
    config = make_config(base_url, auth=session_auth(ttl=60))
    client = RestClient(config, environ=SECRETS, clock=lambda: now[0])
    try:
        await client.request("POST", "/call", json={})
        now[0] += 59
        await client.request("POST", "/call", json={})
        assert len(gw.logins) == 1
        now[0] += 2
        await client.request("POST", "/call", json={})
    finally:
        await client.aclose()
    assert len(gw.logins) == 2
    assert gw.refused == 0
    assert gw.calls[-1]["body"]["session"] == "sess-2-xyz"


async def test_wrong_password_is_rejected_at_login(base_url: str, gw: Gateway) -> None:
    """A login answered error_code 100 is GATEWAY_100_AUTHEN_ERROR; the call is never made."""
    gw.password = "another"
    client = RestClient(make_config(base_url, auth=session_auth()), environ=SECRETS)
    try:
        with pytest.raises(PartnerRejected, match="login refused") as caught:
            await client.request("POST", "/call", json={})
    finally:
        await client.aclose()
    assert caught.value.fault_code == "GATEWAY_100_AUTHEN_ERROR"
    assert len(gw.logins) == 1
    assert gw.calls == []


@pytest.mark.parametrize("answer", [{"error_code": 0}, {"error_code": 0, "session": 42}])
async def test_login_without_a_session_is_malformed(
    session_client: RestClient, gw: Gateway, answer: dict[str, Any]
) -> None:
    """A login answer without a usable session is PartnerUnavailable MALFORMED_REPLY."""
    gw.login_answer = answer
    with pytest.raises(PartnerUnavailable) as caught:
        await session_client.request("POST", "/call", json={})
    assert caught.value.fault_code == "MALFORMED_REPLY"
    assert gw.calls == []


async def test_secrets_never_reach_logs_or_errors(
    base_url: str, gw: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither the password nor the session appears in any log record or error message."""
    caplog.set_level(logging.DEBUG)
    client = RestClient(make_config(base_url, auth=session_auth()), environ=SECRETS)
    try:
        await client.request("POST", "/call", json={})
        gw.expire_all()
        await client.request("POST", "/call", json={})
        gw.always_refuse = True
        with pytest.raises(PartnerRejected) as caught:
            await client.request("POST", "/call", json={})
    finally:
        await client.aclose()
    assert "logged in as bus" in caplog.text
    for secret in (PASSWORD, "sess-1-xyz", "sess-2-xyz", "sess-3-xyz"):
        assert secret not in caplog.text
        assert secret not in str(caught.value)


# --- X-Road --------------------------------------------------------------------------------


async def test_xroad_headers_name_client_user_and_dossier(base_url: str, gw: Gateway) -> None:
    """With an X-Road identity, each call carries client, a fresh id, user and the dossier."""
    identity = XRoadIdentity(
        client="VN/GOV/000.00.00.H12/LGSP", service="VN/GOV/000.00.00.G12/X/y", user_id="officer"
    )
    client = RestClient(make_config(base_url, xroad=identity))
    try:
        await client.request("GET", "/echo", issue=DOSSIER)
        await client.request("GET", "/echo", issue=DOSSIER)
    finally:
        await client.aclose()
    first, second = (call["headers"] for call in gw.calls)
    assert first["x-road-client"] == "VN/GOV/000.00.00.H12/LGSP"
    assert first["x-road-userid"] == "officer"
    assert first["x-road-issue"] == DOSSIER
    assert len(first["x-road-id"]) == 32
    assert first["x-road-id"] != second["x-road-id"]


async def test_no_xroad_headers_without_identity(plain: RestClient, gw: Gateway) -> None:
    """Without an X-Road identity no X-Road header is sent, even with a dossier code."""
    await plain.request("GET", "/echo", issue=DOSSIER)
    assert not [name for name in gw.calls[0]["headers"] if name.startswith("x-road")]


# --- paging --------------------------------------------------------------------------------


async def collect(client: RestClient, **options: Any) -> list[list[Any]]:
    """Every page the helper yields."""
    return [page async for page in client.pages(**options)]


async def test_paging_stops_at_a_short_page(plain: RestClient, gw: Gateway) -> None:
    """23 items in pages of 10 are three pages, the last one short, in three requests."""
    gw.items = 23
    pages = await collect(plain, path="/items", items="data.items", page_size=10)
    assert [len(page) for page in pages] == [10, 10, 3]
    assert [item for page in pages for item in page] == list(range(23))
    assert [call["body"]["page"] for call in gw.calls] == ["1", "2", "3"]


async def test_paging_stops_at_the_total(plain: RestClient, gw: Gateway) -> None:
    """With a total, 20 items in pages of 10 take two requests, not a third empty one."""
    gw.items, gw.send_total = 20, True
    pages = await collect(
        plain, path="/items", items="data.items", total="data.total", page_size=10
    )
    assert [len(page) for page in pages] == [10, 10]
    assert len(gw.calls) == 2


async def test_paging_without_total_asks_until_empty(plain: RestClient, gw: Gateway) -> None:
    """Without a total, an exact multiple of the page size ends with one empty page."""
    gw.items = 20
    pages = await collect(plain, path="/items", items="data.items", page_size=10)
    assert [len(page) for page in pages] == [10, 10]
    assert len(gw.calls) == 3


async def test_paging_by_post_puts_parameters_in_the_body(plain: RestClient, gw: Gateway) -> None:
    """POST paging sends page and size (custom names allowed) in the JSON body beside the query."""
    gw.items = 5
    pages = await collect(
        plain,
        path="/items",
        method="POST",
        json={"madonvi": "000.00.10.H12"},
        items="data.items",
        page_size=3,
    )
    assert pages == [[0, 1, 2], [3, 4]]
    assert gw.calls[1]["body"] == {"madonvi": "000.00.10.H12", "page": 2, "size": 3}


async def test_paging_items_must_be_a_list(plain: RestClient, gw: Gateway) -> None:
    """A page whose items are not a list is MALFORMED_REPLY."""
    with pytest.raises(PartnerUnavailable) as caught:
        await collect(plain, path="/items", items="data.missing", page_size=10)
    assert caught.value.fault_code == "MALFORMED_REPLY"


async def test_paging_gives_up_after_max_pages(plain: RestClient) -> None:
    """A partner that keeps sending full pages is TOO_MANY_PAGES after max_pages."""
    with pytest.raises(PartnerUnavailable) as caught:
        await collect(plain, path="/endless", page_size=2, max_pages=3)
    assert caught.value.fault_code == "TOO_MANY_PAGES"


# --- error classification ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status_code", "expected"),
    [
        (500, PartnerUnavailable),
        (502, PartnerUnavailable),
        (503, PartnerUnavailable),
        (504, PartnerUnavailable),
        (408, PartnerUnavailable),
        (429, PartnerUnavailable),
        (302, PartnerUnavailable),
        (400, PartnerRejected),
        (403, PartnerRejected),
        (404, PartnerRejected),
        (409, PartnerRejected),
        (422, PartnerRejected),
    ],
)
async def test_http_status_classification(
    plain: RestClient, status_code: int, expected: type[BusError]
) -> None:
    """5xx, 408, 429 and a stray 3xx are transient HTTP_<code>; other 4xx are rejections."""
    error = await fail(plain, f"/status/{status_code}?message=Hệ thống lỗi")
    assert type(error) is expected
    assert error.fault_code == f"HTTP_{status_code}"
    assert "Hệ thống lỗi" in error.message
    assert DOSSIER in error.message
    assert isinstance(error.__cause__, httpx.HTTPStatusError)


@pytest.mark.parametrize(("code", "name"), sorted(GATEWAY_ERRORS.items()))
async def test_gateway_codes_are_rejections(plain: RestClient, code: int, name: str) -> None:
    """Each gateway error_code ≠ 0 with HTTP 200 is PartnerRejected GATEWAY_<code>_<NAME>."""
    error = await fail(plain, f"/gateway/{code}")
    assert type(error) is PartnerRejected
    assert error.fault_code == f"GATEWAY_{code}_{name}"
    assert f"error_code {code} {name}" in error.message
    assert error.__cause__ is not None


async def test_gateway_code_as_text_and_unknown_code(plain: RestClient) -> None:
    """error_code "201" reads as 201; a code outside the table is GATEWAY_<code>_UNKNOWN."""
    assert (await fail(plain, "/gateway/201")).fault_code == "GATEWAY_201_RECORD_NOT_FOUND"
    assert (await fail(plain, "/gateway/777")).fault_code == "GATEWAY_777_UNKNOWN"


async def test_gateway_success_code_passes(plain: RestClient) -> None:
    """error_code 0 is success, and the answer's sizes and times are reported."""
    reply = await plain.request("GET", "/gateway/0")
    assert reply.status_code == 200
    assert reply.body["error_code"] == 0
    assert reply.request_size == 0 and reply.response_size > 0
    assert reply.sent_at.tzinfo is not None and reply.sent_at <= reply.answered_at


async def test_a_4xx_with_a_gateway_code_names_the_code(plain: RestClient) -> None:
    """A 404 carrying error_code 201 is GATEWAY_201_RECORD_NOT_FOUND, the more precise code."""
    error = await fail(plain, "/status/404?error_code=201")
    assert type(error) is PartnerRejected
    assert error.fault_code == "GATEWAY_201_RECORD_NOT_FOUND"


async def test_a_5xx_with_a_gateway_code_stays_transient(plain: RestClient) -> None:
    """A 503 carrying error_code 500 is still transient HTTP_503: the server is the problem."""
    error = await fail(plain, "/status/503?error_code=500")
    assert type(error) is PartnerUnavailable
    assert error.fault_code == "HTTP_503"


@pytest.mark.parametrize(
    "kind", ["html", "list", "empty", "gzip", "bad-code", "bool-code", "huge-code"]
)
async def test_unusable_answers_are_malformed_reply(plain: RestClient, kind: str) -> None:
    """Non-JSON, a list for an object, an undecodable body, a non-numeric or absurd error_code."""
    error = await fail(plain, f"/raw/{kind}")
    assert type(error) is PartnerUnavailable
    assert error.fault_code == "MALFORMED_REPLY"
    assert error.__cause__ is not None


async def test_partner_text_is_masked(plain: RestClient) -> None:
    """A CCCD in the partner's message reaches the error only masked."""
    error = await fail(plain, "/gateway/500")
    assert "001192054321" not in error.message
    assert "*********321" in error.message


async def test_timeout_is_partner_timeout(base_url: str) -> None:
    """A partner that does not answer within timeout_seconds is PARTNER_TIMEOUT."""
    client = RestClient(make_config(base_url, timeout_seconds=0.3))
    started = time.monotonic()
    try:
        error = await fail(client, "/hang")
    finally:
        await client.aclose()
    assert time.monotonic() - started < 3
    assert type(error) is PartnerUnavailable
    assert error.fault_code == "PARTNER_TIMEOUT"
    assert isinstance(error.__cause__, httpx.TimeoutException)


async def test_refused_connection_is_unreachable() -> None:
    """A closed port is PARTNER_UNREACHABLE with the ConnectError attached."""
    with serve_app(FastAPI()) as url:
        pass  # the port is free again once the server has stopped
    client = RestClient(make_config(url))
    try:
        error = await fail(client, "/anything")
    finally:
        await client.aclose()
    assert type(error) is PartnerUnavailable
    assert error.fault_code == "PARTNER_UNREACHABLE"
    assert isinstance(error.__cause__, httpx.ConnectError)


@pytest.mark.parametrize("garbage", [b"SSH-2.0-OpenSSH\r\n\r\n", b""])
async def test_protocol_errors_are_unreachable(garbage: bytes) -> None:
    """A peer that speaks no HTTP, or hangs up without answering, is PARTNER_UNREACHABLE."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(garbage)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = RestClient(make_config(f"http://127.0.0.1:{port}"))
    try:
        error = await fail(client, "/anything")
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()
    assert type(error) is PartnerUnavailable
    assert error.fault_code == "PARTNER_UNREACHABLE"
    assert isinstance(error.__cause__, httpx.RemoteProtocolError)


def test_translate_errors_keeps_bus_errors_and_flags_malformed() -> None:
    """Bus errors pass through unchanged; MalformedReply becomes MALFORMED_REPLY with its cause."""
    original = PartnerRejected("no", fault_code="X")
    with pytest.raises(PartnerRejected) as kept, translate_errors("here"):
        raise original
    assert kept.value is original
    with pytest.raises(PartnerUnavailable) as caught, translate_errors("here"):
        raise MalformedReply("odd")
    assert caught.value.fault_code == "MALFORMED_REPLY"
    assert caught.value.message == "here: unreadable answer: odd"
    assert isinstance(caught.value.__cause__, MalformedReply)


def test_mask_personal_numbers_keeps_dates() -> None:
    """Runs of 9-13 digits are masked; dates of 8 or 14 digits stay readable."""
    text = "CCCD 001192054321, CMND 123456789, ngày 20240315, lúc 20240315090000"
    assert mask_personal_numbers(text) == (
        "CCCD *********321, CMND ******789, ngày 20240315, lúc 20240315090000"
    )


# --- connection pool -----------------------------------------------------------------------


async def test_pool_holds_calls_to_concurrency(base_url: str, gw: Gateway) -> None:
    """With concurrency 3, ten calls at once reach the partner at most three at a time."""
    gw.refuse_as, gw.latency = "never", 0.05
    client = RestClient(make_config(base_url, concurrency=3))
    try:
        await asyncio.gather(*(client.request("POST", "/call", json={}) for _ in range(10)))
    finally:
        await client.aclose()
    assert gw.most_in_flight == 3
    assert len(gw.calls) == 10


async def test_pool_is_capped_whatever_the_concurrency(base_url: str, gw: Gateway) -> None:
    """A connector configured for 100 calls in flight keeps at most MAX_POOL_CONNECTIONS open."""
    gw.refuse_as, gw.latency = "never", 0.2
    client = RestClient(make_config(base_url, concurrency=100))
    try:
        await asyncio.gather(
            *(client.request("POST", "/call", json={}) for _ in range(MAX_POOL_CONNECTIONS + 8))
        )
    finally:
        await client.aclose()
    assert gw.most_in_flight == MAX_POOL_CONNECTIONS


async def test_no_auth_is_the_default(base_url: str) -> None:
    """A config without an [auth] table is NoAuth, whose credentials are never renewed."""
    config = make_config(base_url)
    client = RestClient(config)
    await client.aclose()
    assert isinstance(config.auth, NoAuth)
    assert client.auth.renewable is False
