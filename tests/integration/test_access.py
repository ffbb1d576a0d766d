"""Who may do what: every route tried by a client that should pass and one that should not.

A served bus (real HTTP, real store and broker) with five clients, each with the rights of a real
caller: the province's one-stop system, another desk's, the residence software (a partner that
pushes), the national portal (reads every dossier's progress) and an operator. Every route of
the API is in :data:`MATRIX` or :data:`PUBLIC`; a route added without deciding who may call it
fails :func:`test_every_route_is_in_the_matrix`.
"""

from __future__ import annotations

import asyncio
import base64
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bus.api.app import create_app
from bus.security.certificates import certificate_fingerprint
from bus.security.clients import (
    AgencyClient,
    ClientDirectory,
    ReadScope,
    hash_secret,
    save_clients,
)
from bus.security.signing import (
    SignatureRefused,
    public_key_text,
    sign_request,
    verify_response,
)
from bus.settings import Settings
from bus.testing import serve_app
from bus.testing.certificates import self_signed_certificate
from contracts import sample_birth_dossier_json, sample_death_dossier_json
from tests.conftest import ALL_BUNDLES, make_settings
from tests.integration.helpers import park_dead_letter

pytestmark = [pytest.mark.broker]

DESK = "000.00.10.H12"
OTHER_DESK = "000.00.11.H12"
RESIDENCE_AGENCY = "000.23.10.H12"  # connectors/residence/connector.toml
BIRTH = "1.001193"


def _client(client_id: str, agency: str, **rights: Any) -> AgencyClient:
    return AgencyClient.model_validate(
        {"id": client_id, "agency": agency, "secret_sha256": (hash_secret(client_id + "-s"),)}
        | rights
    )


CLIENTS = (
    _client(
        "one-stop",
        DESK,
        procedures=(BIRTH,),
        subscribe=(f"dossier.status.*.{DESK}",),
    ),
    _client("other-desk", OTHER_DESK, procedures=("*",), subscribe=(f"dossier.*.{OTHER_DESK}",)),
    _client("residence", RESIDENCE_AGENCY, connectors=("residence",)),
    _client("portal", "000.00.00.G22", read=ReadScope.ALL, subscribe=("dossier.status.#",)),
    _client("operator", DESK, read=ReadScope.ALL, subscribe=("#",), operator=True),
)


def key(client_id: str) -> dict[str, str]:
    """The X-API-Key header of a test client."""
    return {"X-API-Key": client_id + "-s"}


@dataclass
class Bus:
    """The served bus, with a dossier the one-stop system submitted and its subscription."""

    url: str
    dossier: str
    subscription: str
    dead_letter: int

    def client(self, client_id: str | None) -> httpx.AsyncClient:
        """An HTTP client of the API as ``client_id`` (anonymous for ``None``)."""
        headers = key(client_id) if client_id else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture
def settings(
    namespace: str, sqlite_url: str, tmp_path: Path, broker_cleanup: list[str]
) -> Settings:
    """A bus running the bundles (so residence is a step of a birth dossier) with CLIENTS."""
    clients_file = tmp_path / "clients.yaml"
    save_clients(clients_file, ClientDirectory(CLIENTS))
    return make_settings(
        namespace,
        sqlite_url,
        linkage_bundles=ALL_BUNDLES,
        clients_file=str(clients_file),
        trusted_proxies=("127.0.0.1/32",),
    )


@pytest.fixture
async def bus(settings: Settings) -> AsyncIterator[Bus]:
    """The API served, a birth dossier submitted and a webhook registered by the one-stop."""
    with serve_app(create_app(settings), lifespan="on") as url:
        async with httpx.AsyncClient(base_url=url, headers=key("one-stop"), timeout=30) as http:
            answer = await http.post("/v1/dossiers", json=sample_birth_dossier_json(sequence=7))
            assert answer.status_code == 202, answer.text
            subscribed = await http.post(
                "/v1/subscriptions",
                json={
                    "url": "http://127.0.0.1:9/hook",
                    "routing_keys": [f"dossier.status.9.{DESK}"],
                },
            )
            assert subscribed.status_code == 201, subscribed.text
        code = answer.json()["dossier_code"]
        dead_letter = await park_dead_letter(settings, code)
        yield Bus(url, code, subscribed.json()["id"], dead_letter)


# --- the matrix --------------------------------------------------------------------------------

Call = Callable[[httpx.AsyncClient, Bus], Awaitable[httpx.Response]]


@dataclass(frozen=True)
class Case:
    """One route: a call, who passes (and the answer), who does not (and the answer)."""

    method: str
    path: str
    call: Call
    allowed: str
    allowed_status: int
    denied: str
    denied_status: int


def _residence_answer(bus: Bus) -> dict[str, Any]:
    return {
        "maHoSo": bus.dossier,
        "ketQua": "DA_TIEP_NHAN",
        "soHoKhau": None,
        "thoiGian": datetime.now(UTC).strftime("%Y%m%d%H%M%S"),
        "lyDo": "Đã tiếp nhận hồ sơ",
    }


MATRIX = [
    Case(
        "POST", "/v1/dossiers",
        lambda c, b: c.post("/v1/dossiers", json=sample_birth_dossier_json(sequence=8)),
        "one-stop", 202, "other-desk", 403,  # a dossier of another agency's desk
    ),
    Case(
        "GET", "/v1/dossiers/{code}",
        lambda c, b: c.get(f"/v1/dossiers/{b.dossier}"),
        "residence", 200, "other-desk", 404,  # residence acts in its bundle; existence not told
    ),
    Case(
        "GET", "/v1/dossiers/{code}/alerts",
        lambda c, b: c.get(f"/v1/dossiers/{b.dossier}/alerts"),
        "one-stop", 200, "other-desk", 404,
    ),
    Case(
        "GET", "/v1/dossiers/{code}/trace",
        lambda c, b: c.get(f"/v1/dossiers/{b.dossier}/trace"),
        "one-stop", 200, "other-desk", 404,
    ),
    Case(
        "GET", "/v1/dossiers/{code}/evidence",
        lambda c, b: c.get(f"/v1/dossiers/{b.dossier}/evidence"),
        "portal", 200, "other-desk", 404,
    ),
    Case(
        "POST", "/v1/inbound/{connector}",
        lambda c, b: c.post("/v1/inbound/residence", json=_residence_answer(b)),
        "residence", 200, "one-stop", 403,  # only the partner pushes as its connector
    ),
    Case(
        "GET", "/v1/inbound/{connector}",
        lambda c, b: c.get("/v1/inbound/residence"),
        "residence", 200, "portal", 403,
    ),
    Case(
        "GET", "/v1/stats",
        lambda c, b: c.get("/v1/stats", params={"from": "2024-03-01", "to": "2024-03-31"}),
        "portal", 200, "one-stop", 403,  # statistics of every agency
    ),
    Case(
        "GET", "/v1/alerts",
        lambda c, b: c.get("/v1/alerts"),
        "operator", 200, "residence", 403,
    ),
    Case(
        "GET", "/v1/flow",
        lambda c, b: c.get("/v1/flow"),
        "portal", 200, "one-stop", 403,  # every desk's counts: read all, like the statistics
    ),
    Case(
        "GET", "/v1/connectors/health",
        lambda c, b: c.get("/v1/connectors/health"),
        "operator", 200, "residence", 403,
    ),
    Case(
        "GET", "/metrics",
        lambda c, b: c.get("/metrics"),
        "operator", 200, "portal", 403,  # monitoring clients (metrics: true) and operators
    ),
    Case(
        "GET", "/v1/dead-letters",
        lambda c, b: c.get("/v1/dead-letters"),
        "operator", 200, "portal", 403,  # dead letters are whole messages: operators only
    ),
    Case(
        "GET", "/v1/dead-letters/{dead_letter_id}",
        lambda c, b: c.get(f"/v1/dead-letters/{b.dead_letter}"),
        "operator", 200, "one-stop", 403,
    ),
    Case(
        "POST", "/v1/dead-letters/{dead_letter_id}/replay",
        lambda c, b: c.post(f"/v1/dead-letters/{b.dead_letter}/replay"),
        "operator", 200, "portal", 403,  # operators alone replay dead letters
    ),
    Case(
        "POST", "/v1/dead-letters:replay",
        lambda c, b: c.post("/v1/dead-letters:replay", json={"ids": [b.dead_letter]}),
        "operator", 200, "residence", 403,
    ),
    Case(
        "POST", "/v1/dead-letters/{dead_letter_id}/discard",
        lambda c, b: c.post(
            f"/v1/dead-letters/{b.dead_letter}/discard", json={"reason": "filed twice"}
        ),
        "operator", 200, "one-stop", 403,
    ),
    Case(
        "POST", "/v1/dead-letters:discard",
        lambda c, b: c.post(
            "/v1/dead-letters:discard", json={"filter": {}, "reason": "partner retired"}
        ),
        "operator", 200, "other-desk", 403,
    ),
    Case(
        "GET", "/v1/events/stream",
        lambda c, b: _stream_status(c, "dossier.status.#"),
        "portal", 200, "one-stop", 403,  # one-stop may hear only its own desk's events
    ),
    Case(
        "POST", "/v1/subscriptions",
        lambda c, b: c.post(
            "/v1/subscriptions",
            json={"url": "http://127.0.0.1:9/hook", "routing_keys": [f"dossier.status.*.{DESK}"]},
        ),
        "one-stop", 201, "other-desk", 403,
    ),
    Case(
        "GET", "/v1/subscriptions",
        lambda c, b: c.get("/v1/subscriptions"),
        "one-stop", 200, "anonymous", 401,
    ),
    Case(
        "GET", "/v1/subscriptions/{subscription_id}",
        lambda c, b: c.get(f"/v1/subscriptions/{b.subscription}"),
        "operator", 200, "portal", 404,  # another client's subscription is not shown
    ),
    Case(
        "POST", "/v1/subscriptions/{subscription_id}/enable",
        lambda c, b: c.post(f"/v1/subscriptions/{b.subscription}/enable"),
        "one-stop", 200, "other-desk", 404,
    ),
    Case(
        "DELETE", "/v1/subscriptions/{subscription_id}",
        lambda c, b: c.delete(f"/v1/subscriptions/{b.subscription}"),
        "one-stop", 204, "residence", 404,
    ),
]  # fmt: skip

PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("POST", "/v1/oauth/token"),  # takes the client's credentials itself
    ("GET", "/v1/keys"),  # the bus's public keys, to check its signed replies
}


async def _stream_status(client: httpx.AsyncClient, pattern: str) -> httpx.Response:
    """Open the event stream and leave at once: only the status of the answer matters."""
    async with client.stream(
        "GET", "/v1/events/stream", params={"routing_key": pattern}
    ) as response:
        await response.aclose()
        return response


def test_every_route_is_in_the_matrix(settings: Settings) -> None:
    """A route nobody decided the rights of fails here (OpenAPI's own pages are documentation)."""
    # Read from the OpenAPI document: every route the API serves and documents.
    routes = {
        (method.upper(), path)
        for path, operations in create_app(settings).openapi()["paths"].items()
        for method in operations
    }
    decided = {(case.method, case.path) for case in MATRIX} | PUBLIC
    assert routes - decided == set(), "routes with no decision on who may call them"
    assert decided - routes == set(), "the matrix names routes that do not exist"


@pytest.mark.parametrize("case", MATRIX, ids=[f"{c.method} {c.path}" for c in MATRIX])
async def test_a_route_lets_in_whom_it_should_and_no_one_else(bus: Bus, case: Case) -> None:
    """Anonymous: 401. The client that should pass does; the one that should not gets 403 (or
    404 where even the existence of what it asked for is not its to know)."""
    async with bus.client(None) as anonymous:
        refused = await case.call(anonymous, bus)
    assert refused.status_code == 401, refused.text
    assert refused.headers["www-authenticate"].startswith("Bearer")
    denied_as = None if case.denied == "anonymous" else case.denied
    async with bus.client(denied_as) as denied:
        answer = await case.call(denied, bus)
    assert answer.status_code == case.denied_status, answer.text
    async with bus.client(case.allowed) as allowed:
        answer = await case.call(allowed, bus)
    assert answer.status_code == case.allowed_status, answer.text


async def test_a_client_sees_only_its_own_subscriptions(bus: Bus) -> None:
    """The list is the caller's; an operator's is everyone's."""
    async with bus.client("portal") as portal, bus.client("operator") as operator:
        assert (await portal.get("/v1/subscriptions")).json() == []
        everyone = (await operator.get("/v1/subscriptions")).json()
    assert [(s["id"], s["owner"]) for s in everyone] == [(bus.subscription, "one-stop")]


async def test_a_client_cannot_submit_a_procedure_it_is_not_allowed(bus: Bus) -> None:
    """The one-stop client submits births only: a death dossier from its own desk is 403."""
    async with bus.client("one-stop") as client:
        answer = await client.post("/v1/dossiers", json=sample_death_dossier_json(sequence=9))
    assert answer.status_code == 403 and "1.007073" in answer.json()["detail"]


async def test_an_unknown_key_is_refused(bus: Bus) -> None:
    """A key the bus does not know is 401, and nothing says whether a client exists."""
    async with httpx.AsyncClient(base_url=bus.url, headers={"X-API-Key": "guess"}) as client:
        answer = await client.get(f"/v1/dossiers/{bus.dossier}")
    assert answer.status_code == 401 and "not known" in answer.json()["detail"]


# --- OAuth2 client credentials -----------------------------------------------------------------


async def test_client_credentials_give_a_token_that_opens_the_api(bus: Bus) -> None:
    """Basic-authenticated client credentials → a Bearer token → the dossier."""
    async with httpx.AsyncClient(base_url=bus.url, timeout=30) as http:
        answer = await http.post(
            "/v1/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=("one-stop", "one-stop-s"),
        )
        assert answer.status_code == 200, answer.text
        token = answer.json()
        assert token["token_type"] == "Bearer" and 0 < token["expires_in"] <= 600
        assert answer.headers["cache-control"] == "no-store"
        bearer = {"Authorization": f"Bearer {token['access_token']}"}
        view = await http.get(f"/v1/dossiers/{bus.dossier}", headers=bearer)
        assert view.status_code == 200, view.text


@pytest.mark.parametrize(
    ("form", "auth", "status", "error"),
    [
        ({"grant_type": "client_credentials"}, ("one-stop", "wrong"), 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, ("portal", "one-stop-s"), 401, "invalid_client"),
        ({"grant_type": "password"}, ("one-stop", "one-stop-s"), 400, "unsupported_grant_type"),
        (
            {"grant_type": "client_credentials", "client_id": "one-stop"},
            None,
            401,
            "invalid_client",
        ),
    ],
    ids=["wrong-secret", "another-clients-secret", "password-grant", "no-secret"],
)
async def test_bad_client_credentials_get_no_token(
    bus: Bus,
    form: dict[str, str],
    auth: tuple[str, str] | None,
    status: int,
    error: str,
) -> None:
    """OAuth2's own errors (RFC 6749 §5.2), and no token."""
    async with httpx.AsyncClient(base_url=bus.url, timeout=30) as http:
        answer = await http.post("/v1/oauth/token", data=form, auth=auth)
    assert (answer.status_code, answer.json()["error"]) == (status, error)
    assert "access_token" not in answer.json()


async def test_an_expired_or_forged_token_is_refused(bus: Bus, settings: Settings) -> None:
    """A token past its time, or signed with another key, is 401 invalid_token."""
    from bus.security.tokens import TokenIssuer, load_or_create_key

    issuer = TokenIssuer(load_or_create_key(Path(settings.token_key_file)), 60)
    expired = issuer.issue("one-stop", DESK, now=datetime.now(UTC) - timedelta(minutes=10))
    forged = TokenIssuer(Ed25519PrivateKey.generate(), 60).issue("one-stop", DESK)
    async with httpx.AsyncClient(base_url=bus.url, timeout=30) as http:
        for token, says in ((expired, "expired"), (forged, "not valid")):
            answer = await http.get(
                f"/v1/dossiers/{bus.dossier}", headers={"Authorization": f"Bearer {token}"}
            )
            assert answer.status_code == 401, answer.text
            assert says in answer.json()["detail"]
            assert 'error="invalid_token"' in answer.headers["www-authenticate"]


# --- mutual TLS through a trusted proxy ----------------------------------------------------------


def _certificate(*, expired: bool = False) -> x509.Certificate:
    if expired:
        return self_signed_certificate(not_before=datetime.now(UTC) - timedelta(days=31))
    return self_signed_certificate("cong-dvcqg.test")


@pytest.fixture
def portal_certificate(settings: Settings) -> x509.Certificate:
    """A certificate registered for the portal client (the directory rewritten before start)."""
    certificate = _certificate()
    portal = next(c for c in CLIENTS if c.id == "portal")
    with_certificate = portal.model_copy(
        update={"certificate_sha256": (certificate_fingerprint(certificate),)}
    )
    save_clients(
        Path(settings.clients_file), ClientDirectory(CLIENTS).with_client(with_certificate)
    )
    return certificate


def _forwarded(certificate: x509.Certificate) -> dict[str, str]:
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    return {"X-Client-Cert": quote(pem)}  # as nginx's $ssl_client_escaped_cert


async def test_a_certificate_forwarded_by_a_trusted_proxy_identifies_its_client(
    portal_certificate: x509.Certificate, bus: Bus
) -> None:
    """The portal's certificate, forwarded from 127.0.0.1 (a trusted proxy), reads the dossier;
    an unregistered or expired certificate is 401."""
    async with httpx.AsyncClient(base_url=bus.url, timeout=30) as http:
        answer = await http.get(
            f"/v1/dossiers/{bus.dossier}", headers=_forwarded(portal_certificate)
        )
        assert answer.status_code == 200, answer.text
        for certificate, says in (
            (_certificate(), "not registered"),
            (_certificate(expired=True), "validity"),
        ):
            answer = await http.get(f"/v1/dossiers/{bus.dossier}", headers=_forwarded(certificate))
            assert answer.status_code == 401 and says in answer.json()["detail"], answer.text


async def test_a_certificate_header_from_an_untrusted_address_is_not_believed(
    namespace: str, sqlite_url: str, tmp_path: Path, broker_cleanup: list[str]
) -> None:
    """With no trusted proxy, anyone could write the header: it identifies no one."""
    certificate = _certificate()
    portal = next(c for c in CLIENTS if c.id == "portal").model_copy(
        update={"certificate_sha256": (certificate_fingerprint(certificate),)}
    )
    clients_file = tmp_path / "clients.yaml"
    save_clients(clients_file, ClientDirectory(CLIENTS).with_client(portal))
    settings = make_settings(namespace, sqlite_url, clients_file=str(clients_file))
    with serve_app(create_app(settings), lifespan="on") as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            answer = await http.get("/v1/alerts", headers=_forwarded(certificate))
    assert answer.status_code == 401 and "trusted proxy" in answer.json()["detail"]


# --- rate limits ----------------------------------------------------------------------------------


def _p95(seconds: list[float]) -> float:
    ordered = sorted(seconds)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


async def test_an_abusive_client_slows_only_itself(
    namespace: str, sqlite_url: str, tmp_path: Path, broker_cleanup: list[str]
) -> None:
    """A client limited to 20 requests a second floods 300: the excess is answered 429 with
    Retry-After and does no work, while another client's requests all pass, about as fast as
    before the flood."""
    flooder = _client(
        "flooder", DESK, procedures=("*",), read=ReadScope.ALL, rate_limit="20/second"
    )
    clients_file = tmp_path / "clients.yaml"
    save_clients(clients_file, ClientDirectory((*CLIENTS, flooder)))
    settings = make_settings(namespace, sqlite_url, clients_file=str(clients_file))
    with serve_app(create_app(settings), lifespan="on") as url:
        async with (
            httpx.AsyncClient(base_url=url, headers=key("flooder"), timeout=30) as abuser,
            httpx.AsyncClient(base_url=url, headers=key("portal"), timeout=30) as portal,
        ):

            async def timed_reads(count: int) -> list[float]:
                spent = []
                for _ in range(count):
                    started = time.perf_counter()
                    answer = await portal.get("/v1/alerts")
                    spent.append(time.perf_counter() - started)
                    assert answer.status_code == 200, answer.text
                return spent

            baseline = await timed_reads(40)
            statuses: list[int] = []
            retry_after: set[str] = set()

            async def flood(count: int) -> None:
                for _ in range(count):
                    answer = await abuser.get("/v1/alerts")
                    statuses.append(answer.status_code)
                    if answer.status_code == 429:
                        retry_after.add(answer.headers["retry-after"])

            flood_started = time.perf_counter()
            during, *_ = await asyncio.gather(timed_reads(40), *(flood(20) for _ in range(15)))
            flood_seconds = time.perf_counter() - flood_started
    refused = statuses.count(429)
    # 20 a second: over a flood of T seconds, at most 20 in each of the ceil(T) + 1 windows it
    # touches (a slow machine stretches the flood over more of them).
    allowed = 20 * (math.ceil(flood_seconds) + 1)
    print(
        f"\n  flooder: {len(statuses)} requests, {statuses.count(200)} answered, {refused} refused"
        f" 429; other client p95 {_p95(baseline) * 1000:.1f} ms before,"
        f" {_p95(during) * 1000:.1f} ms during the flood"
    )
    assert statuses.count(200) <= allowed, f"the flooder got past its limit in {flood_seconds} s"
    assert refused >= 300 - allowed and all(int(value) >= 1 for value in retry_after)
    assert _p95(during) <= max(5 * _p95(baseline), 0.25)


async def test_an_address_that_keeps_failing_is_cut_off(bus: Bus) -> None:
    """After 30 failed authentications in a minute, the address is answered 429 even with a
    good key: guessing secrets is bounded."""
    async with httpx.AsyncClient(base_url=bus.url, timeout=30) as http:
        answers = [
            (await http.get("/v1/alerts", headers={"X-API-Key": f"guess-{n}"})).status_code
            for n in range(31)
        ]
        assert answers[:30] == [401] * 30 and answers[30] == 429
        good = await http.get("/v1/alerts", headers=key("portal"))
        assert good.status_code == 429 and int(good.headers["retry-after"]) >= 1
        token = await http.post(
            "/v1/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=("portal", "portal-s"),
        )
        assert token.status_code == 429 and token.json()["error"] == "slow_down"


# --- signed requests ----------------------------------------------------------------------------


SIGNER_KEY = Ed25519PrivateKey.generate()


@pytest.fixture
async def signed_bus(
    namespace: str, sqlite_url: str, tmp_path: Path, broker_cleanup: list[str]
) -> AsyncIterator[Bus]:
    """A bus where the residence software signs its requests; one dossier to push about."""
    residence = next(c for c in CLIENTS if c.id == "residence").model_copy(
        update={"signing_keys": (public_key_text(SIGNER_KEY.public_key()),)}
    )
    clients_file = tmp_path / "clients.yaml"
    save_clients(clients_file, ClientDirectory(CLIENTS).with_client(residence))
    settings = make_settings(
        namespace, sqlite_url, linkage_bundles=ALL_BUNDLES, clients_file=str(clients_file)
    )
    with serve_app(create_app(settings), lifespan="on") as url:
        async with httpx.AsyncClient(base_url=url, headers=key("one-stop"), timeout=30) as http:
            answer = await http.post("/v1/dossiers", json=sample_birth_dossier_json(sequence=7))
            assert answer.status_code == 202, answer.text
        yield Bus(url, answer.json()["dossier_code"], "", 0)


def _signed_push(
    bus: Bus, *, signer: Ed25519PrivateKey = SIGNER_KEY, created: datetime | None = None
) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(_residence_answer(bus))
    headers = {"content-type": "application/json", **key("residence")}
    url = f"{bus.url}/v1/inbound/residence"
    return body, {
        **headers,
        **sign_request("POST", url, body, key_id="residence", key=signer, created=created),
    }


async def test_a_signed_push_is_accepted_once_and_its_replay_refused(signed_bus: Bus) -> None:
    """The residence software signs its push: accepted, with a reply signed by the bus that
    names the request; the same request again is a replay."""
    body, headers = _signed_push(signed_bus)
    async with httpx.AsyncClient(base_url=signed_bus.url, timeout=30) as http:
        first = await http.post("/v1/inbound/residence", content=body, headers=headers)
        assert first.status_code == 200, first.text
        [jwk] = (await http.get("/v1/keys")).json()["keys"]
        bus_key = Ed25519PublicKey.from_public_bytes(
            base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4))
        )
        verify_response(
            first.status_code,
            list(first.headers.multi_items()),
            first.content,
            key_id=jwk["kid"],
            key=bus_key,
            signature_of_request=headers["Signature"],
        )
        with pytest.raises(SignatureRefused, match="another request"):
            verify_response(
                first.status_code,
                list(first.headers.multi_items()),
                first.content,
                key_id=jwk["kid"],
                key=bus_key,
                signature_of_request=headers["Signature"] + "x",
            )
        again = await http.post("/v1/inbound/residence", content=body, headers=headers)
    assert again.status_code == 401 and "already received" in again.json()["detail"]
    assert 'error="replayed"' in again.headers["www-authenticate"]


@pytest.mark.parametrize("fault", ["unsigned", "other-key", "altered-body", "stale"])
async def test_a_push_without_a_good_signature_is_refused(signed_bus: Bus, fault: str) -> None:
    """Unsigned, signed with another key, changed after signing, or signed ten minutes ago:
    401, and nothing is applied."""
    created = datetime.now(UTC) - timedelta(minutes=10) if fault == "stale" else None
    key_used = Ed25519PrivateKey.generate() if fault == "other-key" else SIGNER_KEY
    body, headers = _signed_push(signed_bus, signer=key_used, created=created)
    if fault == "unsigned":
        headers = {"content-type": "application/json", **key("residence")}
    if fault == "altered-body":
        body = body.replace(b"DA_TIEP_NHAN", b"TU_CHOI")
    says = {
        "unsigned": "signs its requests",
        "other-key": "refused",
        "altered-body": "Content-Digest",
        "stale": "age",
    }[fault]
    async with httpx.AsyncClient(base_url=signed_bus.url, timeout=30) as http:
        answer = await http.post("/v1/inbound/residence", content=body, headers=headers)
        assert answer.status_code == 401, answer.text
        assert says in answer.json()["detail"]
        view = await http.get(f"/v1/dossiers/{signed_bus.dossier}", headers=key("portal"))
    assert not [h for h in view.json()["history"] if h["kind"] == "receive"]
