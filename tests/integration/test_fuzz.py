"""Fuzzing the served API: no input, with credentials or without, gets a server error.

Two fuzzers, each bounded and derandomized (a run is short, and the next run finds the same):

- **schemathesis**, from the API's own OpenAPI document: every operation with credentials (each
  answer must also be one the document describes: status code, media type, body schema),
  and without (each protected operation must answer 401);
- **contract-aware mutations**: valid requests (a sample dossier, a partner's push in JSON or
  SOAP, a query) with a few values replaced by hostile ones: huge numbers, extreme instants,
  NUL characters, injection strings, wrong types. Random bodies rarely get past the first
  check; these reach the mappings, the contract's cross-field rules, the due-date arithmetic
  and the store.

One bus (real HTTP, store and broker) serves the whole module, once on SQLite and once on
PostgreSQL, whose stricter types refuse what SQLite stores (a NUL character, an instant out of
range): each operation is its own test item, and a bus per item would cost more than fuzzing.
"""

from __future__ import annotations

import copy
import re
import time as clock
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bus.api.app import create_app
from bus.testing import HOSTILE_TEXT, SOAP11_ENVELOPE, SOAP12_ENVELOPE
from contracts import VN_TZ, sample_birth_dossier_json
from tests.conftest import AUTH, make_settings
from tests.integration.helpers import park_dead_letter
from tests.integration.served import Database, ServedBus, served_bus

pytestmark = [pytest.mark.broker, pytest.mark.slow]

#: Random examples per operation and pass. schemathesis adds its explicit and coverage cases
#: (boundary values, missing and wrong-typed parameters), so a small random budget still
#: reaches each refusal path, and the module stays well under two minutes on two cores.
MAX_EXAMPLES: Final = 30
#: Examples per contract-aware fuzzer: they are cheap (one request each, no shrinking needed
#: unless something fails) and each reaches deep code.
MUTATIONS: Final = 60

FUZZ: Final = settings(
    max_examples=MAX_EXAMPLES,
    # The same examples on every run: a CI failure is reproducible on a laptop.
    derandomize=True,
    database=None,
    # A served API over loopback on a shared 2-core runner: slow examples are not failures.
    deadline=None,
    suppress_health_check=list(HealthCheck),
)

#: ``GET /v1/events/stream`` answers a valid request with a stream that never ends (heartbeats
#: until the client leaves): in the generic pass each such example would hang until the
#: request timeout. It is fuzzed apart, with fewer examples, each read for a moment only.
EVENT_STREAM: Final = "/v1/events/stream"
STREAM_EXAMPLES: Final = 10
STREAM_READ_SECONDS: Final = 0.5

#: Routes that take no credentials (README "HTTP API"): the anonymous pass leaves them out.
PUBLIC: Final = ("/healthz", "/readyz", "/v1/keys", "/v1/oauth/token")

#: A fuzzer must not be slowed into 429s: the rate limits would hide what it probes.
UNLIMITED: Final[dict[str, object]] = {
    "client_rate_limit": "1000000/second",
    "auth_failure_rate_limit": "1000000/minute",
}

#: The document the app serves at /openapi.json, read when the module is collected (pytest
#: parametrizes by operation before any bus runs); test_the_fuzzed_document_is_the_served_one
#: checks that the served bus publishes this very document.
DOCUMENT: Final[dict[str, Any]] = create_app(make_settings("fuzz", "sqlite://")).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)

#: Dossiers the bus holds before fuzzing, so pushes about them reach the status-change road.
SEEDED: Final = range(1, 6)
AGENCY: Final = "000.00.10.H12"


@dataclass
class FuzzBus:
    """The served bus, and what it answered: requests per fuzzer, operation and status code."""

    served: ServedBus
    answers: Counter[tuple[str, str, int]] = field(default_factory=Counter)

    @property
    def url(self) -> str:
        """The API's base URL."""
        return self.served.url

    def record(self, fuzzer: str, operation: str, status: int) -> None:
        """Count one answer."""
        self.answers[(fuzzer, operation, status)] += 1

    def summary(self) -> str:
        """Requests per fuzzer and operation, with their status codes."""
        per_operation: dict[tuple[str, str], Counter[int]] = {}
        for (fuzzer, operation, status), count in self.answers.items():
            per_operation.setdefault((fuzzer, operation), Counter())[status] += count
        lines = []
        for (fuzzer, operation), statuses in sorted(per_operation.items()):
            codes = ", ".join(f"{code}×{n}" for code, n in sorted(statuses.items()))
            lines.append(f"  {fuzzer:<9} {operation:<48} {sum(statuses.values()):>4}  {codes}")
        return "\n".join(lines)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
async def bus(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[FuzzBus]:
    """The API served for the whole module, holding the SEEDED dossiers."""
    database: Database = request.param
    started = clock.monotonic()
    directory = Path(tmp_path_factory.mktemp("fuzz"))
    async with served_bus(database, directory, **UNLIMITED) as served:
        async with httpx.AsyncClient(base_url=served.url, headers=AUTH, timeout=30) as http:
            for sequence in SEEDED:
                body = sample_birth_dossier_json(sequence=sequence)
                assert (await http.post("/v1/dossiers", json=body)).status_code == 202
                # A parked copy of each, so the dead-letter routes have rows to act on.
                await park_dead_letter(served.settings, body["code"])
        fuzzed = FuzzBus(served)
        yield fuzzed
        async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
            assert (await http.get("/healthz")).status_code == 200, "the bus stopped answering"
    print(f"\n  fuzzed on {database} in {clock.monotonic() - started:.1f} s:\n{fuzzed.summary()}")


@pytest.fixture(scope="module")
def http(bus: FuzzBus) -> Iterator[httpx.Client]:
    """A client with the operator's credentials, for the contract-aware fuzzers."""
    with httpx.Client(base_url=bus.url, headers=AUTH, timeout=30) as client:
        yield client


async def test_the_fuzzed_document_is_the_served_one(bus: FuzzBus) -> None:
    """What is fuzzed is what a client reads at /openapi.json."""
    async with httpx.AsyncClient(base_url=bus.url, timeout=30) as http:
        served = await http.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == DOCUMENT


# --- schemathesis ------------------------------------------------------------------------------


def _label(case: schemathesis.Case) -> str:
    return f"{case.operation.method.upper()} {case.operation.path}"


@FUZZ
@schema.exclude(path=EVENT_STREAM).parametrize()
def test_no_operation_answers_a_server_error(bus: FuzzBus, case: schemathesis.Case) -> None:
    """An authenticated client gets no 5xx, and every answer is one the document describes."""
    response = case.call(base_url=bus.url, headers=AUTH)
    bus.record("auth", _label(case), response.status_code)
    case.validate_response(
        response,
        headers=AUTH,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )


@settings(FUZZ, max_examples=STREAM_EXAMPLES)
@schema.include(path=EVENT_STREAM).parametrize()
def test_the_event_stream_never_answers_a_server_error(
    bus: FuzzBus, case: schemathesis.Case
) -> None:
    """The stream, read for a moment per example, refuses bad patterns with a 4xx and opens for
    good ones, never a 5xx."""
    # schemathesis reads an event stream until the timeout and keeps what came: a bounded look
    # at a stream that would otherwise never end.
    response = case.call(base_url=bus.url, headers=AUTH, timeout=STREAM_READ_SECONDS)
    bus.record("stream", _label(case), response.status_code)
    case.validate_response(
        response,
        headers=AUTH,
        checks=[not_a_server_error, status_code_conformance, content_type_conformance],
    )


@FUZZ
@schema.exclude(path=list(PUBLIC)).parametrize()
def test_without_credentials_every_operation_is_unauthorized(
    bus: FuzzBus, case: schemathesis.Case
) -> None:
    """Without credentials every protected operation answers 401, whatever else is wrong."""
    # An anonymous stream request is refused before any stream opens: no read timeout needed.
    response = case.call(base_url=bus.url)
    bus.record("anonymous", _label(case), response.status_code)
    case.validate_response(response, checks=[not_a_server_error])
    if case.method.upper() != case.operation.method.upper():
        # schemathesis also probes methods the path does not serve: no route takes them, so
        # there is nothing to authenticate, and the router answers 405.
        assert response.status_code == 405, (case.method, case.formatted_path, response.text)
        return
    assert response.status_code == 401, (case.method, case.formatted_path, response.text[:300])
    problem: dict[str, Any] = response.json()
    assert problem["type"] == "urn:lienthong:problem:unauthorized"
    assert response.headers["www-authenticate"][0].startswith("Bearer")


# --- contract-aware mutations ------------------------------------------------------------------

MUTATE: Final = settings(FUZZ, max_examples=MUTATIONS)

_OFFSETS = [timezone(timedelta(hours=hours)) for hours in (-14, -12, -1, 0, 7, 14)]
#: The ends of the calendar, where conversions overflow; random draws seldom land there.
_EDGE_DAYS = [date.min, date.min + timedelta(days=1), date.max - timedelta(days=1), date.max]
_EDGE_INSTANTS = [
    datetime.combine(day, moment, offset)
    for day in (date.min, date.max)
    for moment in (time.min, time(6, 59, 59), time(17), time.max)
    for offset in _OFFSETS
]
DAYS = st.one_of(st.sampled_from(_EDGE_DAYS), st.dates())
#: Any instant Python can write, at any offset: near year 1 and 9999 the conversions to UTC
#: and to Vietnam's time overflow.
INSTANTS = st.one_of(
    st.sampled_from(_EDGE_INSTANTS),
    st.datetimes(
        min_value=datetime(1, 1, 1),
        max_value=datetime(9999, 12, 31, 23, 59, 59),
        timezones=st.sampled_from(_OFFSETS),
    ),
)
#: The dates a dossier code can carry (YYMMDD, 2000-2099), where received_at must fall.
CODE_INSTANTS = st.datetimes(
    min_value=datetime(2000, 1, 1, 7),
    max_value=datetime(2099, 12, 31, 16),
    timezones=st.sampled_from(_OFFSETS),
)
#: Text a store or a protocol may choke on: NUL (PostgreSQL stores none), a byte-order mark,
#: a direction override, the last code point, a long run.
_ODD_TEXT = ["", " ", "\x00", "a\x00b", "\ufeff", "\u202e", "\U0010ffff", "x" * 10_000]
NUMBERS = st.one_of(
    st.integers(-5, 20),
    st.integers(),
    st.sampled_from([2**31, 2**63, -(2**63) - 1, 2**64, 10**30, -(10**30)]),
    st.floats(allow_nan=False, allow_infinity=False),
)
TEXT = st.one_of(
    st.sampled_from(_ODD_TEXT),
    st.text(max_size=30),  # any code point but surrogates, NUL and controls included
    st.sampled_from(sorted(HOSTILE_TEXT.values())),
    INSTANTS.map(datetime.isoformat),
    DAYS.map(date.isoformat),
    # The partners' own date formats (DVCQG yyyyMMddHHmmss, judicial dd/MM/yyyy).
    st.datetimes().map(lambda moment: moment.strftime("%Y%m%d%H%M%S")),
    st.dates().map(lambda day: f"{day.day:02d}/{day.month:02d}/{day.year:04d}"),
    st.text("0123456789", min_size=1, max_size=40),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)

Path_ = tuple[str | int, ...]


def _paths(value: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every key and index of a JSON value, outermost first."""
    found: list[Path_] = []
    items: list[tuple[str | int, Any]]
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return found
    for step, child in items:
        found.append((*prefix, step))
        found.extend(_paths(child, (*prefix, step)))
    return found


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` with up to three values replaced, removed, or fields added."""
    body = copy.deepcopy(base)
    for _ in range(draw(st.integers(0, 3))):
        paths = _paths(body)
        if not paths:
            break
        *parents, last = draw(st.sampled_from(paths))
        target: Any = body
        for step in parents:
            target = target[step]
        action = draw(st.sampled_from(["replace", "replace", "remove", "add"]))
        if action == "replace":
            target[last] = draw(JSON_VALUES)
        elif action == "remove":
            del target[last]
        elif isinstance(target, dict):
            target[draw(st.text(max_size=12))] = draw(JSON_VALUES)
        else:
            target.append(draw(JSON_VALUES))
    return body


@st.composite
def dated_dossiers(draw: st.DrawFn) -> dict[str, Any]:
    """A sample dossier received at an extreme instant, its code dated to match (so the
    contract's cross-check passes and the due-date arithmetic runs), its other instants too."""
    sequence = draw(st.integers(100, 9999))
    body = sample_birth_dossier_json(sequence=sequence)
    received = draw(st.one_of(CODE_INSTANTS, INSTANTS))
    try:
        day = received.astimezone(VN_TZ).date()
    except OverflowError:
        day = received.date()
    body["received_at"] = received.isoformat()
    body["code"] = f"{AGENCY}-{day:%y%m%d}-{sequence:04d}"
    for name in draw(st.sets(st.sampled_from(["due_at", "finished_at", "returned_at"]))):
        body[name] = draw(INSTANTS).isoformat()
    if body.get("finished_at"):
        body["status"] = draw(st.sampled_from([9, 10]))
    return body


def _check(bus: FuzzBus, fuzzer: str, operation: str, answer: httpx.Response) -> None:
    """No 5xx; a refusal says why."""
    bus.record(fuzzer, operation, answer.status_code)
    assert answer.status_code < 500, answer.text[:500]
    if answer.status_code >= 400:
        assert answer.content.strip(), "a refusal without a body"


@MUTATE
@given(body=st.one_of(mutated(sample_birth_dossier_json(sequence=50)), dated_dossiers()))
def test_mutated_dossiers_are_answered_without_a_server_error(
    bus: FuzzBus, http: httpx.Client, body: dict[str, Any]
) -> None:
    """A sample dossier with hostile values, or received at an extreme instant: accepted or
    refused with a problem document, never a 5xx."""
    answer = http.post("/v1/dossiers", json=body)
    _check(bus, "mutate", "POST /v1/dossiers", answer)
    if answer.status_code >= 400:
        assert answer.headers["content-type"] == "application/problem+json"


_JUDICIAL = {
    "maHoSo": f"{AGENCY}-240315-0001",
    "trangThai": 3,
    "ngayCapNhat": "16/03/2024",
    "nguoiXuLy": "Lê Văn Tư",
    "soPhieu": "LLTP-2024-01",
}
_DOSSIER_SYNC = {
    "session": "s-1",
    "madonvi": AGENCY,
    "service": "DongBoHoSoMC",
    "data": [
        {
            "MaHoSo": f"{AGENCY}-240315-0060",
            "MaTTHC": "1.001193",
            "TenTTHC": "Đăng ký khai sinh",
            "KenhThucHien": 2,
            "SoBienNhan": "BN-240315-0060",
            "ChuHoSo": "Nguyễn Văn An",
            "LoaiDoiTuong": 1,
            "MaDoiTuong": "001090012345",
            "TrichYeuHoSo": "Đăng ký khai sinh cho cháu Nguyễn Thị Bình",
            "NgayTiepNhan": "20240315090000",
            "TrangThaiHoSo": 1,
            "DonViXuLy": AGENCY,
        }
    ],
}


_RESIDENCE = {
    "maHoSo": f"{AGENCY}-240315-0003",
    "ketQua": "DA_DANG_KY",
    "thoiGian": "20240316141500",
    "soHoKhau": "HK-0012345",
}
#: A push of each JSON partner that applies as it is: the mutations start from there.
JSON_PUSHES: Final = {
    "judicial_records": _JUDICIAL,
    "one_stop": _DOSSIER_SYNC,
    "residence": _RESIDENCE,
}


@pytest.mark.parametrize("connector", sorted(JSON_PUSHES))
def test_mutated_json_pushes_are_answered_without_a_server_error(
    bus: FuzzBus, http: httpx.Client, connector: str
) -> None:
    """A partner's JSON push (a judicial status record, a DVCQG dossier sync, a residence
    answer) with hostile values: applied or refused in the partner's style, never a 5xx."""

    @settings(MUTATE, max_examples=MUTATIONS // 2)
    @given(body=mutated(JSON_PUSHES[connector]))
    def push(body: dict[str, Any]) -> None:
        answer = http.post(f"/v1/inbound/{connector}", json=body)
        _check(bus, "mutate", f"POST /v1/inbound/{connector}", answer)
        assert isinstance(answer.json()["error_code"], int), answer.text

    push()


#: What XML 1.0 can carry: the text a SOAP field may hold.
XML_TEXT = st.one_of(
    st.text(st.characters(blacklist_categories=["Cs", "Cc"]), max_size=30),
    st.sampled_from(sorted(v for v in HOSTILE_TEXT.values() if "\r" not in v)),
    INSTANTS.map(lambda moment: moment.strftime("%Y%m%d%H%M%S")),
    st.text("0123456789", max_size=40),
)
_SOAP_FIELDS = {
    "maHoSo": f"{AGENCY}-240315-0002",
    "trangThai": "4",
    "ngayCapNhat": "20240315100000",
    "soDangKy": "KS/2024/000123",
    "nguoiKy": "Phạm Thị Hạnh",
}
HOTICH: Final = "urn:vn:lienthong:hotich:1.0"


@st.composite
def soap_pushes(draw: st.DrawFn) -> tuple[bytes, str]:
    """A civil-status capNhatTrangThaiHoSo envelope with fields changed, dropped or added."""
    fields = dict(_SOAP_FIELDS)
    for name in draw(st.sets(st.sampled_from(sorted(fields)), max_size=3)):
        if draw(st.booleans()):
            del fields[name]
        else:
            fields[name] = draw(XML_TEXT)
    if draw(st.booleans()):
        fields[draw(st.sampled_from(["ghiChu", "maHoSo2", "x"]))] = draw(XML_TEXT)
    version = draw(st.sampled_from(["1.1", "1.2"]))
    namespace = SOAP11_ENVELOPE if version == "1.1" else SOAP12_ENVELOPE
    envelope = etree.Element(f"{{{namespace}}}Envelope", nsmap={"soap": namespace})
    body = etree.SubElement(envelope, f"{{{namespace}}}Body")
    call = etree.SubElement(body, f"{{{HOTICH}}}capNhatTrangThaiHoSo", nsmap={"h": HOTICH})
    for name, value in fields.items():
        etree.SubElement(call, f"{{{HOTICH}}}{name}").text = value
    media = "text/xml" if version == "1.1" else "application/soap+xml"
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8"), media


@MUTATE
@given(push=soap_pushes())
def test_mutated_soap_pushes_are_answered_without_a_server_error(
    bus: FuzzBus, http: httpx.Client, push: tuple[bytes, str]
) -> None:
    """A civil-status SOAP push with hostile field values: applied, or a SOAP fault with the
    partner's code, never a 5xx other than SOAP 1.1's own fault status."""
    content, media = push
    answer = http.post("/v1/inbound/civil_status", content=content, headers={"content-type": media})
    bus.record("mutate", "POST /v1/inbound/civil_status", answer.status_code)
    root = etree.fromstring(answer.content)
    fault = root.find(".//{*}Fault")
    if answer.status_code == 500:
        # SOAP 1.1 answers a fault with HTTP 500 (its binding says so): a Client fault, with
        # the partner's code, is the refusal; anything else is a server error.
        assert media == "text/xml" and fault is not None, answer.text[:500]
        assert b"Client" in etree.tostring(fault), answer.text[:500]
    else:
        assert answer.status_code < 500, answer.text[:500]
    assert root.findtext(f".//{{{HOTICH}}}maLoi") is not None, answer.text[:500]


DOSSIER_CODES = st.builds(
    lambda day, sequence: f"{AGENCY}-{day:%y%m%d}-{sequence:04d}",
    st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)),
    st.integers(0, 9999),
)
QUERIES = st.one_of(
    st.builds(lambda since: f"/v1/alerts?since={since}", INSTANTS.map(datetime.isoformat)),
    st.builds(
        lambda first, last: f"/v1/stats?from={first}&to={last}",
        DAYS.map(date.isoformat),
        DAYS.map(date.isoformat),
    ),
    st.builds(
        lambda code, tail: f"/v1/dossiers/{code}{tail}",
        st.one_of(DOSSIER_CODES, st.sampled_from([f"{AGENCY}-240315-{n:04d}" for n in SEEDED])),
        st.sampled_from(["", "/alerts", "/evidence"]),
    ),
)


@MUTATE
@given(target=QUERIES)
def test_extreme_queries_are_answered_without_a_server_error(
    bus: FuzzBus, http: httpx.Client, target: str
) -> None:
    """Instants and days at the ends of the calendar, dossier codes of any date: an answer or a
    refusal, never a 5xx."""
    answer = http.get(target.replace("+", "%2B"))
    route = re.sub(r"\d{3}\.\d{2}\.\d{2}\.H12-\d{6}-\d{4}", "{code}", target.split("?")[0])
    _check(bus, "mutate", f"GET {route}", answer)


# --- regressions -------------------------------------------------------------------------------


async def test_a_nul_character_is_refused_as_the_clients_error(bus: FuzzBus) -> None:
    """A NUL character (PostgreSQL stores none) anywhere in a JSON body is a 400 naming where,
    not a 503 "retry later"; nothing is stored."""
    dossier = sample_birth_dossier_json(sequence=70)
    dossier["summary"] = "Đăng ký\u0000khai sinh"
    with_nul_key = sample_birth_dossier_json(sequence=71)
    with_nul_key["form"]["ghi\u0000chu"] = "x"
    before = await bus.served.rows()
    async with httpx.AsyncClient(base_url=bus.url, headers=AUTH, timeout=30) as http:
        for route, body, where in (
            ("/v1/dossiers", dossier, "summary"),
            ("/v1/dossiers", with_nul_key, "a key of form"),
            (
                "/v1/subscriptions",
                {"url": "http://127.0.0.1:9/h", "routing_keys": ["#"], "description": "\u0000"},
                "description",
            ),
        ):
            answer = await http.post(route, json=body)
            assert answer.status_code == 400, answer.text
            problem = answer.json()
            assert problem["type"] == "urn:lienthong:problem:encoding"
            assert f"the text at {where} holds a NUL character" in problem["detail"]
        pushed = await http.post(
            "/v1/inbound/judicial_records", json={**_JUDICIAL, "nguoiXuLy": "a\u0000b"}
        )
        assert pushed.status_code == 400 and pushed.json()["error_code"] == 302, pushed.text
        assert "nguoiXuLy" in pushed.json()["message"]
        for method in ("GET", "DELETE"):
            answer = await http.request(method, "/v1/subscriptions/a%00b")
            assert answer.status_code == 404, answer.text
    assert await bus.served.rows() == before


@pytest.mark.parametrize(
    ("since", "named"),
    [
        ("0001-01-01T00:00:00+14:00", "out of range"),  # before year 1 in UTC
        ("0001-01-01T06:59:59+07:00", "out of range"),  # year 1 in Vietnam, year 0 in UTC
        ("9999-12-31T23:59:59-14:00", "out of range"),  # after year 9999 in Vietnam
    ],
)
async def test_an_instant_out_of_range_is_a_422(bus: FuzzBus, since: str, named: str) -> None:
    """An instant whose UTC or Vietnamese form falls outside years 1-9999 is a 422 naming the
    parameter, not an overflow answered 500."""
    async with httpx.AsyncClient(base_url=bus.url, headers=AUTH, timeout=30) as http:
        answer = await http.get("/v1/alerts", params={"since": since})
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["errors"]
    assert error["field"] == "query.since" and named in error["problem"]


@pytest.mark.parametrize(
    ("first", "last", "field"),
    [("0001-01-01", "0001-12-31", "from"), ("9999-01-01", "9999-12-31", "to")],
)
async def test_a_statistics_day_at_the_end_of_the_calendar_is_a_422(
    bus: FuzzBus, first: str, last: str, field: str
) -> None:
    """A period whose midnights cannot be written (0001-01-01 in UTC, the day after
    9999-12-31) is a 422 naming the bound, not an overflow answered 500 or 503."""
    async with httpx.AsyncClient(base_url=bus.url, headers=AUTH, timeout=30) as http:
        answer = await http.get("/v1/stats", params={"from": first, "to": last})
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"][0]["field"] == field
        inside = await http.get("/v1/stats", params={"from": "9999-01-01", "to": "9999-12-30"})
    assert inside.status_code == 200, inside.text
