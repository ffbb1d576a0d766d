"""The hostile input corpus (issue 6): each item is refused with a clear 4xx and leaves nothing.

Every item goes to the routes that take data from outside: ``POST /v1/dossiers`` (the canonical
JSON), ``POST /v1/inbound/judicial_records`` (a partner's JSON) and ``POST
/v1/inbound/civil_status`` (a partner's SOAP 1.1 and 1.2). For each one the test checks that the
answer is a 4xx saying what is wrong (a problem document, or the partner's own result code and
message), that no table of the store gained or lost a row, and that the bus still answers.
Then a burst of the heaviest items, sent while good dossiers flow, must not slow them down.

Where the rest of the corpus is tested: ``tests/integration/test_bad_input.py`` (the canonical
JSON's field-level refusals, size and depth caps, media types, encodings),
``tests/integration/test_inbound.py`` (``HOSTILE_XML`` against every kind of partner),
``tests/integration/test_access.py`` (every route's rights, tokens, certificates) and
``tests/integration/test_fuzz.py`` (fuzzing, NUL characters, instants out of range). Forged or
missing *message* signatures belong to signed messages, not built yet.
"""

from __future__ import annotations

import asyncio
import base64
import json
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from lxml import etree

from bus.security.clients import AgencyClient, ClientDirectory, hash_secret, save_clients
from bus.security.tokens import TokenIssuer, load_or_create_key
from bus.testing import HOSTILE_TEXT, HOSTILE_XML, SOAP11_ENVELOPE, SOAP12_ENVELOPE
from contracts import sample_birth_dossier_json
from tests.conftest import AUTH, TEST_OPERATOR
from tests.integration.helpers import wait_for
from tests.integration.served import ServedBus, served_bus

pytestmark = pytest.mark.broker

DESK: Final = "000.00.10.H12"
OTHER_DESK: Final = "000.00.11.H12"
BIRTH: Final = "1.001193"
HOTICH: Final = "urn:vn:lienthong:hotich:1.0"
PROBLEM_JSON: Final = "application/problem+json"
MAX_BODY: Final = 1_048_576  # BUS_MAX_BODY_BYTES by default
#: The dossier every push of the corpus is about: held by the bus, so a push that got through
#: would move it and write a hop, a status event and a dedup record.
SEEDED: Final = f"{DESK}-240315-0001"

CLIENTS: Final = (
    TEST_OPERATOR,
    # The residence software: pushes its own answers, nothing else.
    AgencyClient(
        id="residence", agency="000.23.10.H12", secret_sha256=(hash_secret("residence-s"),),
        connectors=("residence",),
    ),
    # The province's one-stop system: submits births from its own desk.
    AgencyClient(
        id="one-stop", agency=DESK, secret_sha256=(hash_secret("one-stop-s"),),
        procedures=(BIRTH,),
    ),
)  # fmt: skip


@pytest.fixture(scope="module")
async def bus(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServedBus]:
    """One bus for the module, on SQLite (the refusals happen before the store), holding the
    seeded dossier, every event of it confirmed by the broker."""
    directory = Path(tmp_path_factory.mktemp("hostile"))
    save_clients(directory / "clients.yaml", ClientDirectory(CLIENTS))
    async with served_bus(
        "sqlite",
        directory,
        clients_file=str(directory / "clients.yaml"),
        # The corpus sends dozens of refused credentials from one address: what is tested is
        # each refusal, not the rate limit that would answer 429 after thirty of them.
        auth_failure_rate_limit="1000000/minute",
        client_rate_limit="1000000/second",
    ) as served:
        async with httpx.AsyncClient(base_url=served.url, headers=AUTH, timeout=30) as http:
            answer = await http.post("/v1/dossiers", json=sample_birth_dossier_json(sequence=1))
            assert answer.status_code == 202, answer.text

        async def all_sent() -> bool:
            return await served.unsent_events() == 0

        await wait_for(all_sent)
        yield served


# --- what a refusal must say -------------------------------------------------------------------

Style = Literal["problem", "partner-json", "soap"]


@dataclass(frozen=True)
class Refusal:
    """The answer expected: HTTP status, in which style, and what it must say."""

    status: int
    style: Style
    says: str
    code: int | None = None  # the partner's result code (302, 500, …) for partner styles


def check_refusal(answer: httpx.Response, expected: Refusal) -> None:
    """The answer is the expected 4xx, in its style, saying what is wrong.

    SOAP 1.1 is the one exception: its binding answers every fault with HTTP 500 (WS-I Basic
    Profile R1126), so there the refusal is a fault whose code blames the client.
    """
    assert answer.status_code == expected.status, answer.text[:500]
    if expected.style == "soap" and answer.status_code == 500:
        assert etree.fromstring(answer.content).findtext(".//faultcode", "").endswith("Client")
    else:
        assert 400 <= answer.status_code < 500
    assert b"root:" not in answer.content, "file content leaked into the answer"
    if expected.style == "problem":
        assert answer.headers["content-type"] == PROBLEM_JSON, answer.headers
        problem = answer.json()
        assert problem["type"].startswith("urn:lienthong:problem:") and problem["title"]
        assert expected.says in problem["detail"], problem
    elif expected.style == "partner-json":
        result = answer.json()
        assert result["error_code"] == expected.code, result
        assert expected.says in result["message"], result
    else:
        root = etree.fromstring(answer.content)
        assert root.find(".//{*}Fault") is not None, answer.text[:500]
        error = root.find(f".//{{{HOTICH}}}loi")
        assert error is not None, answer.text[:500]
        assert error.findtext(f"{{{HOTICH}}}maLoi") == str(expected.code), answer.text[:500]
        assert expected.says in (error.findtext(f"{{{HOTICH}}}moTa") or ""), answer.text[:500]


# --- the corpus --------------------------------------------------------------------------------

Target = Literal["dossiers", "judicial", "soap11", "soap12"]
ROUTES: Final[dict[Target, str]] = {
    "dossiers": "/v1/dossiers",
    "judicial": "/v1/inbound/judicial_records",
    "soap11": "/v1/inbound/civil_status",
    "soap12": "/v1/inbound/civil_status",
}
MEDIA: Final[dict[Target, str]] = {
    "dossiers": "application/json",
    "judicial": "application/json",
    "soap11": "text/xml; charset=utf-8",
    "soap12": "application/soap+xml; charset=utf-8",
}


@dataclass(frozen=True)
class Hostile:
    """One item of the corpus sent to one route."""

    target: Target
    content: bytes
    refusal: Refusal
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False

    async def send(self, http: httpx.AsyncClient) -> httpx.Response:
        """POST it (streamed without a Content-Length when ``chunked``)."""
        headers = {"content-type": MEDIA[self.target], **self.headers}
        content: bytes | AsyncIterator[bytes] = self.content
        if self.chunked:
            content = _chunks(self.content)
        return await http.post(ROUTES[self.target], content=content, headers=headers)


async def _chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def dossier(**changes: Any) -> dict[str, Any]:
    """A valid birth dossier (not yet held by the bus) with ``changes``."""
    return {**sample_birth_dossier_json(sequence=2), **changes}


def judicial(**changes: Any) -> dict[str, Any]:
    """A judicial-records status record about the seeded dossier, with ``changes``."""
    return {
        "maHoSo": SEEDED,
        "trangThai": 3,
        "ngayCapNhat": "16/03/2024",
        "nguoiXuLy": "Lê Văn Tư",
        **changes,
    }


def soap(version: Literal["1.1", "1.2"], *, before: bytes = b"", **fields: str) -> bytes:
    """A capNhatTrangThaiHoSo envelope about the seeded dossier; ``before`` goes ahead of it."""
    namespace = SOAP11_ENVELOPE if version == "1.1" else SOAP12_ENVELOPE
    envelope = etree.Element(f"{{{namespace}}}Envelope", nsmap={"soap": namespace})
    body = etree.SubElement(envelope, f"{{{namespace}}}Body")
    call = etree.SubElement(body, f"{{{HOTICH}}}capNhatTrangThaiHoSo", nsmap={"h": HOTICH})
    values = {"maHoSo": SEEDED, "trangThai": "4", "ngayCapNhat": "20240315100000", **fields}
    for name, value in values.items():
        etree.SubElement(call, f"{{{HOTICH}}}{name}").text = value
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + before + etree.tostring(envelope)


def _padded(content: bytes, size: int) -> bytes:
    """``content`` padded with insignificant whitespace before its last byte to ``size``."""
    return content[:-1] + b" " * (size - len(content)) + content[-1:]


def _nested_json(levels: int) -> bytes:
    return b'{"a":' * levels + b"1" + b"}" * levels


def _deep_envelope(version: Literal["1.1", "1.2"]) -> bytes:
    # A well-formed envelope whose field nests 10,000 elements: the depth cap, not the
    # envelope check, must refuse it.
    marker = "@@DEEP@@"
    return soap(version, nguoiKy=marker).replace(
        marker.encode(), b"<a>" * 10_000 + b"</a>" * 10_000
    )


def _bad_utf8_envelope(version: Literal["1.1", "1.2"]) -> bytes:
    return soap(version, nguoiKy="@@NAME@@").replace(b"@@NAME@@", b"Nguy\xe1\xbb")


def _soap_refusal(says: str = "XML refused", status: int = 400, code: int = 302) -> Refusal:
    return Refusal(status, "soap", says, code)


def corpus() -> dict[str, Hostile]:
    """Every item of the corpus, on every route it applies to, by name."""
    items: dict[str, Hostile] = {}
    soap_targets: tuple[tuple[Target, Literal["1.1", "1.2"]], ...] = (
        ("soap11", "1.1"),
        ("soap12", "1.2"),
    )
    for target, version in soap_targets:
        for name, document in HOSTILE_XML.items():
            items[f"{target}:{name}"] = Hostile(target, document, _soap_refusal())
        items[f"{target}:pi-in-envelope"] = Hostile(
            target,
            soap(version, before=b'<?xml-stylesheet href="http://attacker.example/x.xsl"?>\n'),
            _soap_refusal("processing instruction"),
        )
        items[f"{target}:deep-in-envelope"] = Hostile(
            target, _deep_envelope(version), _soap_refusal("deeper than")
        )
        items[f"{target}:invalid-utf8-field"] = Hostile(
            target, _bad_utf8_envelope(version), _soap_refusal("UTF-8")
        )
        oversized = _padded(soap(version), 2 * MAX_BODY)
        items[f"{target}:oversized"] = Hostile(
            target, oversized, _soap_refusal("BUS_MAX_BODY_BYTES", 413)
        )
        items[f"{target}:oversized-chunked"] = Hostile(
            target,
            oversized,
            _soap_refusal("BUS_MAX_BODY_BYTES", 413),
            chunked=True,
        )
        for text_name in ("sql_quote", "sql_drop", "script_tag"):
            items[f"{target}:{text_name}-in-maHoSo"] = Hostile(
                target,
                soap(version, maHoSo=HOSTILE_TEXT[text_name]),
                _soap_refusal("maHoSo", 500 if version == "1.1" else 400, 500),
            )
        items[f"{target}:sql-in-trangThai"] = Hostile(
            target,
            soap(version, trangThai=HOSTILE_TEXT["sql_stacked"]),
            _soap_refusal("trangThai", 500 if version == "1.1" else 400, 500),
        )

    json_refusals: dict[str, tuple[bytes, bytes, Refusal, Refusal]] = {
        # name: (dossier body, push body, dossier refusal, push refusal)
        "deep-array": (
            b"[" * 5_000 + b"]" * 5_000,
            b"[" * 5_000 + b"]" * 5_000,
            Refusal(400, "problem", "BUS_MAX_JSON_DEPTH"),
            Refusal(400, "partner-json", "BUS_MAX_JSON_DEPTH", 302),
        ),
        "deep-object": (
            _json(dossier(form="@@DEEP@@")).replace(b'"@@DEEP@@"', _nested_json(2_000)),
            _json(judicial(nguoiXuLy="@@DEEP@@")).replace(b'"@@DEEP@@"', _nested_json(2_000)),
            Refusal(400, "problem", "BUS_MAX_JSON_DEPTH"),
            Refusal(400, "partner-json", "BUS_MAX_JSON_DEPTH", 302),
        ),
        "number-past-double": (
            _json(dossier()).replace(b'"channel": 2', b'"channel": 1e400'),
            _json(judicial()).replace(b'"trangThai": 3', b'"trangThai": 1e400'),
            Refusal(400, "problem", "not valid JSON"),
            Refusal(400, "partner-json", "not valid JSON", 302),
        ),
        "number-100k-digits": (
            _json(dossier()).replace(b'"channel": 2', b'"channel": ' + b"9" * 100_000),
            _json(judicial()).replace(b'"trangThai": 3', b'"trangThai": ' + b"9" * 100_000),
            Refusal(400, "problem", "not valid JSON"),
            Refusal(400, "partner-json", "not valid JSON", 302),
        ),
        "integer-past-64-bits": (
            _json(dossier(channel=2**64)),
            _json(judicial(trangThai=2**64)),
            Refusal(422, "problem", "channel"),
            Refusal(422, "partner-json", "trangThai", 500),
        ),
        "huge-negative-number": (
            _json(
                dossier(fees=[{"name": "Lệ phí", "code": None, "collection_method": None,
                               "amount_vnd": -(10**30)}])
            ),
            _json(judicial(ngayCapNhat=-(10**30))),
            Refusal(422, "problem", "fees[0].amount_vnd"),
            Refusal(422, "partner-json", "ngayCapNhat", 500),
        ),
        "invalid-utf8": (
            _json(dossier(summary="@@X@@")).replace(b"@@X@@", b"\xc0\xae"),
            _json(judicial(nguoiXuLy="@@X@@")).replace(b"@@X@@", b"\xed\xa0\x80"),
            Refusal(400, "problem", "UTF-8"),
            Refusal(400, "partner-json", "UTF-8", 302),
        ),
        "nul-character": (
            _json(dossier(summary="a\u0000b")),
            _json(judicial(nguoiXuLy="a\u0000b")),
            Refusal(400, "problem", "NUL character"),
            Refusal(400, "partner-json", "NUL character", 302),
        ),
        "oversized": (
            _padded(_json(dossier()), 2 * MAX_BODY),
            _padded(_json(judicial()), 2 * MAX_BODY),
            Refusal(413, "problem", "BUS_MAX_BODY_BYTES"),
            Refusal(413, "partner-json", "BUS_MAX_BODY_BYTES", 302),
        ),
        "xml-as-json": (
            HOSTILE_XML["billion_laughs_full"],
            HOSTILE_XML["external_entity"],
            Refusal(400, "problem", "not valid JSON"),
            Refusal(400, "partner-json", "not valid JSON", 302),
        ),
    }  # fmt: skip
    for name, (dossier_body, push_body, dossier_refusal, push_refusal) in json_refusals.items():
        items[f"dossiers:{name}"] = Hostile("dossiers", dossier_body, dossier_refusal)
        items[f"judicial:{name}"] = Hostile("judicial", push_body, push_refusal)
    for name in ("oversized",):
        items[f"dossiers:{name}-chunked"] = Hostile(
            "dossiers", json_refusals[name][0], json_refusals[name][2], chunked=True
        )
        items[f"judicial:{name}-chunked"] = Hostile(
            "judicial", json_refusals[name][1], json_refusals[name][3], chunked=True
        )
    items["dossiers:xml-declared"] = Hostile(
        "dossiers",
        HOSTILE_XML["external_entity"],
        Refusal(415, "problem", "application/json"),
        headers={"content-type": "application/xml"},
    )
    items["judicial:xml-declared"] = Hostile(
        "judicial",
        HOSTILE_XML["external_entity"],
        Refusal(415, "partner-json", "", 302),
        headers={"content-type": "application/xml"},
    )

    # Injection strings where a field has a format: refused, naming the field.
    formatted = {
        "code": "code",
        "receiving_agency": "receiving_agency",
        "procedure_code": "procedure_code",
        "received_at": "received_at",
    }
    for text_name in ("sql_quote", "sql_union", "sql_drop", "script_tag", "jndi"):
        text = HOSTILE_TEXT[text_name]
        for key, named in formatted.items():
            items[f"dossiers:{text_name}-in-{key}"] = Hostile(
                "dossiers", _json(dossier(**{key: text})), Refusal(422, "problem", named)
            )
        items[f"judicial:{text_name}-in-maHoSo"] = Hostile(
            "judicial", _json(judicial(maHoSo=text)), Refusal(422, "partner-json", "maHoSo", 500)
        )
        items[f"judicial:{text_name}-in-trangThai"] = Hostile(
            "judicial",
            _json(judicial(trangThai=text)),
            Refusal(422, "partner-json", "trangThai", 500),
        )
    return items


CORPUS: Final = corpus()


async def _still_answers(bus: ServedBus) -> None:
    async with httpx.AsyncClient(base_url=bus.url, timeout=10) as http:
        assert (await http.get("/healthz")).status_code == 200


@pytest.mark.parametrize("name", sorted(CORPUS))
async def test_hostile_input_is_refused_and_leaves_nothing(bus: ServedBus, name: str) -> None:
    """The item gets a 4xx saying what is wrong; no table changes; the bus still answers."""
    item = CORPUS[name]
    before = await bus.rows()
    async with httpx.AsyncClient(base_url=bus.url, headers=AUTH, timeout=30) as http:
        answer = await item.send(http)
    check_refusal(answer, item.refusal)
    assert await bus.rows() == before
    await _still_answers(bus)


@pytest.mark.parametrize("name", sorted(HOSTILE_TEXT))
async def test_injection_strings_in_free_text_stay_text(bus: ServedBus, name: str) -> None:
    """In free-text fields an injection string is only text: the dossier is accepted, stored
    and read back byte for byte, and the store holds what one dossier adds, nothing less."""
    text = HOSTILE_TEXT[name]
    sequence = 100 + sorted(HOSTILE_TEXT).index(name)
    body = sample_birth_dossier_json(sequence=sequence)
    body["summary"] = text
    body["applicant"]["full_name"] = text
    body["form"]["place_of_birth"] = text
    body["form"][text] = text  # a key of the free-form part too
    before = await bus.rows()
    async with httpx.AsyncClient(base_url=bus.url, headers=AUTH, timeout=30) as http:
        answer = await http.post("/v1/dossiers", json=body)
        assert answer.status_code == 202, answer.text
        view = await http.get(f"/v1/dossiers/{body['code']}")
    assert view.status_code == 200 and view.headers["content-type"] == "application/json"
    stored = view.json()["dossier"]
    assert stored["summary"] == text and stored["applicant"]["full_name"] == text
    assert stored["form"]["place_of_birth"] == text and stored["form"][text] == text
    after = await bus.rows()
    assert after["dossiers"] == before["dossiers"] + 1
    assert all(after[table] >= count for table, count in before.items()), "rows went missing"


# --- credentials -------------------------------------------------------------------------------


def _unsigned(token: str) -> str:
    """``token``'s claims under ``alg: none`` and no signature."""
    claims = jwt.decode(token, options={"verify_signature": False})
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    return f"{header.decode()}.{payload.decode()}."


def _hmac_signed(token: str) -> str:
    """``token``'s claims signed with HS256 by someone who does not hold the bus's key."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return jwt.encode(claims, "a-guessed-shared-secret-of-32-bytes!", algorithm="HS256")


Credentials = Callable[[ServedBus], dict[str, str]]


def _bearer(make: Callable[[TokenIssuer], str]) -> Credentials:
    def headers(bus: ServedBus) -> dict[str, str]:
        issuer = TokenIssuer(load_or_create_key(Path(bus.settings.token_key_file)), 60)
        return {"Authorization": f"Bearer {make(issuer)}"}

    return headers


CREDENTIALS: Final[dict[str, tuple[Credentials, str]]] = {
    "none": (lambda bus: {}, "authenticate with"),
    "unknown-key": (lambda bus: {"X-API-Key": "guessed"}, "not known"),
    "expired-token": (
        _bearer(lambda i: i.issue("one-stop", DESK, now=datetime.now(UTC) - timedelta(hours=1))),
        "expired",
    ),
    "token-of-another-key": (
        _bearer(lambda i: TokenIssuer(Ed25519PrivateKey.generate(), 60).issue("one-stop", DESK)),
        "not valid",
    ),
    "unsigned-token": (_bearer(lambda i: _unsigned(i.issue("one-stop", DESK))), "not valid"),
    "hmac-token": (_bearer(lambda i: _hmac_signed(i.issue("one-stop", DESK))), "not valid"),
    "token-for-another-agency": (
        _bearer(lambda i: i.issue("one-stop", OTHER_DESK)),
        "no longer allowed",
    ),
}


def _valid_write(target: Target) -> Hostile:
    """A request that would be accepted with good credentials (the refusal is filled in)."""
    content = {
        "dossiers": _json(dossier()),
        "judicial": _json(judicial(trangThai=4, ngayCapNhat="18/03/2024")),
        "soap11": soap("1.1"),
        "soap12": soap("1.2"),
    }[target]
    return Hostile(target, content, Refusal(401, "problem", ""))


@pytest.mark.parametrize("target", ["dossiers", "judicial", "soap11"])
@pytest.mark.parametrize("credentials", sorted(CREDENTIALS))
async def test_missing_or_bad_credentials_are_refused_and_leave_nothing(
    bus: ServedBus, credentials: str, target: Target
) -> None:
    """A write without credentials, with an unknown key, or with a token that is expired,
    signed by another key, unsigned, HMAC-signed, or naming another agency: 401 saying which,
    a Bearer challenge, and nothing stored."""
    make, says = CREDENTIALS[credentials]
    item = _valid_write(target)
    before = await bus.rows()
    async with httpx.AsyncClient(base_url=bus.url, headers=make(bus), timeout=30) as http:
        answer = await item.send(http)
    check_refusal(answer, Refusal(401, "problem", says))
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert await bus.rows() == before
    await _still_answers(bus)


@pytest.mark.parametrize(
    ("client", "target", "says"),
    [
        ("residence", "soap11", "not the partner of connector civil_status"),
        ("residence", "judicial", "not the partner of connector judicial_records"),
        ("residence", "dossiers", "submits for 000.23.10.H12"),
        ("one-stop", "judicial", "not the partner of connector judicial_records"),
    ],
)
async def test_a_client_pushing_as_another_agency_is_refused(
    bus: ServedBus, client: str, target: Target, says: str
) -> None:
    """A partner pushing as another partner, or a desk client posting what it does not own:
    403 saying why, and nothing stored."""
    item = _valid_write(target)
    before = await bus.rows()
    headers = {"X-API-Key": f"{client}-s"}
    async with httpx.AsyncClient(base_url=bus.url, headers=headers, timeout=30) as http:
        answer = await item.send(http)
    check_refusal(answer, Refusal(403, "problem", says))
    assert await bus.rows() == before


async def test_a_desk_submitting_for_another_desk_is_refused(bus: ServedBus) -> None:
    """The one-stop client may submit births for its own desk only: another desk's is 403."""
    body = sample_birth_dossier_json(sequence=3, agency=OTHER_DESK)
    before = await bus.rows()
    async with httpx.AsyncClient(
        base_url=bus.url, headers={"X-API-Key": "one-stop-s"}, timeout=30
    ) as http:
        answer = await http.post("/v1/dossiers", json=body)
    check_refusal(answer, Refusal(403, "problem", OTHER_DESK))
    assert await bus.rows() == before


# --- no slowdown of other traffic --------------------------------------------------------------

#: The heaviest items, sent in a loop by each hostile sender during the burst.
BURST: Final = [
    "soap11:billion_laughs_full",
    "soap11:quadratic_blowup",
    "soap12:deep_nesting",
    "soap11:oversized-chunked",
    "dossiers:deep-array",
    "dossiers:number-100k-digits",
    "dossiers:oversized",
    "dossiers:oversized-chunked",
    "judicial:deep-object",
    "dossiers:sql_union-in-code",
]
GOOD_PER_PHASE: Final = 120
GOOD_SENDERS: Final = 4
HOSTILE_SENDERS: Final = 6
#: Hostile requests a second in all: several times the good traffic's own rate.
HOSTILE_RATE: Final = 400.0
#: Generous on purpose: the API, both clients and the broker share two cores, so the bound
#: catches a hostile request that blocks or hogs the process, not scheduling noise.
SLOWDOWN_FACTOR: Final = 5.0
CEILING_SECONDS: Final = 2.0


def _p95(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=20, method="inclusive")[-1]


async def _good_traffic(http: httpx.AsyncClient, sequences: range) -> list[float]:
    """POST a valid dossier per sequence, GOOD_SENDERS at a time; each one's latency."""
    queue = list(sequences)
    latencies: list[float] = []

    async def sender() -> None:
        while queue:
            body = sample_birth_dossier_json(sequence=queue.pop())
            started = time.perf_counter()
            answer = await http.post("/v1/dossiers", json=body)
            latencies.append(time.perf_counter() - started)
            assert answer.status_code == 202, answer.text

    await asyncio.gather(*(sender() for _ in range(GOOD_SENDERS)))
    return latencies


@pytest.mark.slow
async def test_a_hostile_burst_does_not_slow_good_dossiers(bus: ServedBus) -> None:
    """Good dossiers sent during a burst of the heaviest hostile requests (from another
    process, as from an attacker's machine) keep their p95 latency within SLOWDOWN_FACTOR of
    the same traffic without the burst, and under CEILING_SECONDS; every hostile request is
    refused."""
    async with httpx.AsyncClient(base_url=bus.url, headers=AUTH, timeout=30) as good:
        await _good_traffic(good, range(2000, 2040))  # warm-up: connections, caches, plans
        started = time.perf_counter()
        baseline = await _good_traffic(good, range(3000, 3000 + GOOD_PER_PHASE))
        good_rate = GOOD_PER_PHASE / (time.perf_counter() - started)

        burst = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.integration.burst",
            bus.url,
            str(HOSTILE_SENDERS),
            str(HOSTILE_RATE),
            *BURST,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=Path(__file__).parents[2],
        )
        assert burst.stdin is not None and burst.stdout is not None
        try:
            ready = await asyncio.wait_for(burst.stdout.readline(), 30)
            assert ready.strip() == b"ready", ready
            await asyncio.sleep(0.3)  # the burst is under way before the good traffic starts
            during = await _good_traffic(good, range(4000, 4000 + GOOD_PER_PHASE))
        finally:
            burst.stdin.close()  # the end of its input is its signal to stop
            output, _ = await asyncio.wait_for(burst.communicate(), 30)
    refused = {int(status): count for status, count in json.loads(output).items()}

    quiet, loaded = _p95(baseline), _p95(during)
    print(
        f"\n  good dossiers: {good_rate:.0f}/s; p95 {quiet * 1000:.1f} ms alone, "
        f"{loaded * 1000:.1f} ms during {sum(refused.values())} hostile requests "
        f"({loaded / quiet:.2f}×; medians {statistics.median(baseline) * 1000:.1f} and "
        f"{statistics.median(during) * 1000:.1f} ms); hostile answers {refused}"
    )
    assert refused and all(400 <= status < 500 for status in refused), refused
    assert sum(refused.values()) >= GOOD_PER_PHASE, "the burst was lighter than the good traffic"
    assert loaded < SLOWDOWN_FACTOR * quiet, (quiet, loaded)
    assert loaded < CEILING_SECONDS, loaded
