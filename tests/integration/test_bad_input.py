"""Hostile and malformed input to the ingest API gets a clear problem answer and nothing else.

Promise 6: every refusal is an RFC 9457 problem document saying what is wrong (and, for a field,
which field and what is allowed), and a refused request leaves no dossier, no outbox event and
no message on the broker behind it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import httpx
import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.settings import Settings
from bus.store.database import create_engine
from bus.store.schema import dossiers, outbox
from bus.topology import Names
from contracts import sample_birth_dossier_json
from tests.conftest import AMQP_URL, TEST_OPERATOR_SECRET
from tests.integration.helpers import wait_for

pytestmark = pytest.mark.broker

PROBLEM_JSON = "application/problem+json"
MAX_BODY = 1_048_576  # the default BUS_MAX_BODY_BYTES the `settings` fixture keeps
FATHER_CCCD = "001090012345"  # the applicant's CCCD in the sample dossier
MOTHER_CCCD = "001192054321"  # in the sample's form

Dossier = dict[str, Any]


# --- helpers ---------------------------------------------------------------------------------


def _steps(path: str) -> list[str | int]:
    """``documents[0].sha256`` → ``["documents", 0, "sha256"]``."""
    steps: list[str | int] = []
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path):
        steps.append(int(index) if index else name)
    return steps


def with_value(path: str, value: Any) -> Dossier:
    """A valid sample dossier with the value at ``path`` replaced (or added)."""
    body = sample_birth_dossier_json(sequence=1)
    *parents, last = _steps(path)
    target: Any = body
    for step in parents:
        target = target[step]
    target[last] = value
    return body


def dossier_bytes(body: Dossier | None = None) -> bytes:
    """The JSON bytes of a dossier (the valid sample by default)."""
    return orjson.dumps(body if body is not None else sample_birth_dossier_json(sequence=1))


def assert_problem(answer: httpx.Response, status: int, *in_detail: str) -> dict[str, Any]:
    """The answer is an RFC 9457 problem with ``status`` whose detail names each fragment."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM_JSON
    problem: dict[str, Any] = answer.json()
    assert problem["status"] == status
    assert problem["type"].startswith("urn:lienthong:problem:")
    assert problem["title"]
    for fragment in in_detail:
        assert fragment in problem["detail"], problem
    return problem


def field_error(problem: dict[str, Any], field: str) -> dict[str, Any]:
    """The ``errors`` item about ``field``; fails when the problem does not name that field."""
    items: list[dict[str, Any]] = [e for e in problem.get("errors", []) if e["field"] == field]
    assert items, f"no error about {field!r} in {problem}"
    return items[0]


class Leftovers:
    """What a request left behind: rows in the store and messages in the connector queue."""

    def __init__(self, engine: AsyncEngine, channel: aio_pika.abc.AbstractChannel, queue: str):
        self._engine = engine
        self._channel = channel
        self._queue = queue

    async def rows(self) -> tuple[int, int]:
        """How many dossiers and ``dossier.submitted`` events the store holds (an accepted
        birth dossier also writes its linkage run's start and first order)."""
        async with self._engine.connect() as connection:
            stored = await connection.scalar(sa.select(sa.func.count()).select_from(dossiers))
            events = await connection.scalar(
                sa.select(sa.func.count())
                .select_from(outbox)
                .where(outbox.c.routing_key.like("dossier.submitted.%"))
            )
        return int(stored or 0), int(events or 0)

    async def queued(self) -> int:
        """How many messages wait in the civil-status connector's queue."""
        queue = await self._channel.declare_queue(self._queue, passive=True)
        result = queue.declaration_result
        return int(result.message_count or 0)

    async def assert_none(self) -> None:
        """Nothing was stored and nothing was published."""
        assert await self.rows() == (0, 0)
        # The relay polls every 50 ms; give anything that slipped past the store time to show.
        await asyncio.sleep(0.2)
        assert await self.queued() == 0


@pytest.fixture
async def leftovers(settings: Settings, api: str) -> AsyncIterator[Leftovers]:
    """A view on the test bus's store and connector queue (declared by the API at start-up)."""
    engine = create_engine(settings.database_url)
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        yield Leftovers(engine, channel, Names(settings.namespace).connector_queue("civil_status"))
    finally:
        await connection.close()
        await engine.dispose()


async def post_raw(
    client: httpx.AsyncClient, content: bytes, content_type: str | None = "application/json"
) -> httpx.Response:
    """POST raw bytes to the ingest route."""
    headers = {} if content_type is None else {"content-type": content_type}
    return await client.post("/v1/dossiers", content=content, headers=headers)


# --- bodies that are not a JSON object ---------------------------------------------------------

_TRUNCATED = dossier_bytes()[:-40]


@pytest.mark.parametrize(
    ("content", "in_detail"),
    [
        pytest.param(_TRUNCATED, "not valid JSON", id="truncated-object"),
        pytest.param(b'{"code": "000.00.10.H12-240315-0001",}', "not valid JSON", id="comma"),
        pytest.param(b"", "empty", id="empty"),
        pytest.param(b" \r\n\t ", "empty", id="only-whitespace"),
    ],
)
async def test_a_body_that_is_not_json_is_refused(
    client: httpx.AsyncClient, leftovers: Leftovers, content: bytes, in_detail: str
) -> None:
    """A body that does not parse as JSON gets 400 saying so, and nothing is kept."""
    problem = assert_problem(await post_raw(client, content), 400, in_detail)
    assert problem["type"] == "urn:lienthong:problem:json"
    await leftovers.assert_none()


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"[1, 2]", id="array"),
        pytest.param(b'"000.00.10.H12-240315-0001"', id="string"),
        pytest.param(b"42", id="number"),
        pytest.param(b"null", id="null"),
        pytest.param(b"[" + dossier_bytes() + b"]", id="dossier-in-array"),
    ],
)
async def test_json_that_is_not_an_object_is_refused(
    client: httpx.AsyncClient, leftovers: Leftovers, content: bytes
) -> None:
    """Valid JSON that is not an object gets 422 whose error says a dossier object is expected."""
    problem = assert_problem(await post_raw(client, content), 422, "invalid")
    error = field_error(problem, "body")
    assert "dictionary" in error["problem"] or "object" in error["problem"]
    await leftovers.assert_none()


# --- field-level errors ------------------------------------------------------------------------

FIELD_CASES = [
    # id, path to change, bad value, field named in the error, text that says what is allowed
    ("channel-text", "channel", "abc", "channel", "1, 2 or 3"),
    ("channel-unknown", "channel", 7, "channel", "1, 2 or 3"),
    ("received_at-number", "received_at", 12345, "received_at", "ISO 8601"),
    ("received_at-digits", "received_at", "20240315090000", "received_at", "yyyyMMddHHmmss"),
    ("received_at-naive", "received_at", "2024-03-15T09:00:00", "received_at", "UTC offset"),
    ("received_at-garbage", "received_at", "yesterday", "received_at", "datetime"),
    ("documents-object", "documents", {"sha256": "0" * 64}, "documents", "list"),
    ("fees-amount-negative", "fees[0].amount_vnd", -1, "fees[0].amount_vnd", "ge 0"),
    ("agency-short", "receiving_agency", "00.00.10.H12", "receiving_agency", "000.00.10.H12"),
    ("agency-lowercase", "handling_agency", "000.00.10.h12", "handling_agency", "000.00.10.H12"),
    ("code-impossible-date", "code", "000.00.10.H12-241332-0001", "code", "real calendar date"),
    ("code-shape", "code", "HS-2024-0001", "code", "000.00.10.H12-240315-0001"),
    ("procedure-short", "procedure_code", "1.00707", "procedure_code", "1.007073"),
    ("cccd-11-digits", "applicant.identity_number", "00109001234", "applicant.identity_number",
     "12 digits"),
    ("cccd-letters", "applicant.identity_number", "00109001234A", "applicant.identity_number",
     "12 digits"),
    ("cccd-number", "applicant.identity_number", 1090012345, "applicant.identity_number",
     "string"),
    ("sha256-not-hex", "documents[0].sha256", "z" * 64, "documents[0].sha256", "hexadecimal"),
    ("sha256-uppercase", "documents[1].sha256", "A" * 64, "documents[1].sha256", "lowercase"),
    ("phone-letters", "applicant.phone", "call me", "applicant.phone", "8 to 15 digits"),
    ("commune-code", "applicant.address.commune_code", "1", "applicant.address.commune_code",
     "2 to 5 digits"),
    ("summary-too-long", "summary", "x" * 2001, "summary", "max_length 2000"),
    ("extra-field", "nickname", "An", "nickname", "only the fields of the contract"),
    ("extra-nested", "applicant.nickname", "An", "applicant.nickname", "only the fields"),
    ("extra-in-list", "documents[0].owner", "An", "documents[0].owner", "only the fields"),
    ("schema-version", "schema_version", "2.0", "schema_version", "'1.0'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "value", "field", "allowed"),
    [pytest.param(*case[1:], id=case[0]) for case in FIELD_CASES],
)
async def test_an_invalid_field_is_named_with_what_is_allowed(
    client: httpx.AsyncClient,
    leftovers: Leftovers,
    path: str,
    value: Any,
    field: str,
    allowed: str,
) -> None:
    """An invalid field gets 422 naming its exact path and what it accepts; nothing is kept."""
    answer = await client.post("/v1/dossiers", json=with_value(path, value))
    problem = assert_problem(answer, 422, "1 field(s) are invalid", field)
    assert problem["type"] == "urn:lienthong:problem:validation"
    error = field_error(problem, field)
    assert error["problem"]
    assert allowed in f"{error['problem']} {error.get('allowed', '')}", error
    await leftovers.assert_none()


async def test_a_missing_required_field_is_named(
    client: httpx.AsyncClient, leftovers: Leftovers
) -> None:
    """A dossier without received_at gets 422 naming received_at as required."""
    body = sample_birth_dossier_json(sequence=1)
    del body["received_at"]
    problem = assert_problem(await client.post("/v1/dossiers", json=body), 422)
    assert field_error(problem, "received_at")["allowed"] == "a value (the field is required)"
    await leftovers.assert_none()


async def test_every_invalid_field_is_listed(
    client: httpx.AsyncClient, leftovers: Leftovers
) -> None:
    """Several invalid fields in one dossier are all listed, each under its own path."""
    body = with_value("applicant.identity_number", "123")
    body["channel"] = "abc"
    body["documents"][1]["sha256"] = "not a checksum"
    problem = assert_problem(await client.post("/v1/dossiers", json=body), 422, "3 field(s)")
    for field in ("channel", "applicant.identity_number", "documents[1].sha256"):
        field_error(problem, field)
    await leftovers.assert_none()


async def test_a_code_whose_date_disagrees_with_received_at_is_refused(
    client: httpx.AsyncClient, leftovers: Leftovers
) -> None:
    """A dossier code dated 15 March received on 16 March gets 422 explaining the mismatch."""
    body = with_value("received_at", "2024-03-16T09:00:00+07:00")
    problem = assert_problem(await client.post("/v1/dossiers", json=body), 422)
    # A cross-field rule: the contract reports it on the whole dossier, not on one field.
    [error] = problem["errors"]
    assert error["field"] in {"body", "code", "received_at"}
    assert "received_at" in error["problem"] and "YYMMDD" in error["problem"], error
    await leftovers.assert_none()


async def test_an_uncatalogued_procedure_is_refused_with_the_known_ones(
    client: httpx.AsyncClient, leftovers: Leftovers
) -> None:
    """A well-formed procedure code the bus does not know gets 422 listing the known codes."""
    body = with_value("procedure_code", "2.000001")
    answer = await client.post("/v1/dossiers", json=body)
    problem = assert_problem(answer, 422, "2.000001", "catalogue")
    assert problem["type"] == "urn:lienthong:problem:unknown-procedure"
    error = field_error(problem, "procedure_code")
    assert "1.001193" in error["allowed"]
    await leftovers.assert_none()


# --- size, depth, encoding and media type ------------------------------------------------------


def _padded_dossier(size: int) -> bytes:
    """A valid dossier padded with insignificant whitespace to ``size`` bytes."""
    body = dossier_bytes()
    return body[:-1] + b" " * (size - len(body)) + b"}"


async def test_a_body_over_the_size_cap_is_refused(
    client: httpx.AsyncClient, leftovers: Leftovers
) -> None:
    """A 2 MiB body (a valid dossier padded with spaces) gets 413 naming the limit."""
    answer = await post_raw(client, _padded_dossier(2 * MAX_BODY))
    problem = assert_problem(answer, 413, str(MAX_BODY), "BUS_MAX_BODY_BYTES")
    assert problem["type"] == "urn:lienthong:problem:too-large"
    await leftovers.assert_none()


async def test_a_body_at_the_size_cap_is_accepted(
    client: httpx.AsyncClient, leftovers: Leftovers
) -> None:
    """The same padded dossier of exactly BUS_MAX_BODY_BYTES is accepted: the cap is inclusive."""
    answer = await post_raw(client, _padded_dossier(MAX_BODY))
    assert answer.status_code == 202, answer.text
    assert await leftovers.rows() == (1, 1)


async def test_a_chunked_body_over_the_size_cap_is_refused(
    client: httpx.AsyncClient, leftovers: Leftovers
) -> None:
    """A body without Content-Length is counted as it streams and refused with 413 past 1 MiB."""
    padded = _padded_dossier(2 * MAX_BODY)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(padded), 64 * 1024):
            yield padded[start : start + 64 * 1024]

    answer = await client.post(
        "/v1/dossiers", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in answer.request.headers
    assert_problem(answer, 413, "BUS_MAX_BODY_BYTES")
    await leftovers.assert_none()


async def test_a_declared_oversized_body_is_refused_before_it_is_sent(
    api: str, leftovers: Leftovers
) -> None:
    """A Content-Length over the cap gets 413 at once, without the server waiting for the body."""
    url = urlsplit(api)
    assert url.hostname is not None and url.port is not None
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(
            b"POST /v1/dossiers HTTP/1.1\r\n"
            + f"Host: {url.netloc}\r\n".encode()
            + b"Content-Type: application/json\r\n"
            + f"X-API-Key: {TEST_OPERATOR_SECRET}\r\n".encode()
            + f"Content-Length: {2 * MAX_BODY}\r\n\r\n".encode()
            + b'{"code": '
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in header_lines if line)
        }
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 5)
    finally:
        writer.close()
        await writer.wait_closed()
    assert status_line.split(" ")[1] == "413", status_line
    assert headers["content-type"] == PROBLEM_JSON
    assert "BUS_MAX_BODY_BYTES" in orjson.loads(body)["detail"]
    await leftovers.assert_none()


def _nested(levels: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(levels):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(dossier_bytes(with_value("form", _nested(100, 1))), id="form-100-levels"),
        pytest.param(dossier_bytes(with_value("form.x", _nested(31, 1))), id="form-just-over"),
        pytest.param(b"[" * 5000 + b"]" * 5000, id="bare-array-5000-levels"),
        pytest.param(b'{"a":' * 2000 + b"1" + b"}" * 2000, id="bare-object-2000-levels"),
    ],
)
async def test_json_nested_too_deeply_is_refused(
    client: httpx.AsyncClient, leftovers: Leftovers, content: bytes
) -> None:
    """JSON nested past BUS_MAX_JSON_DEPTH (32) gets 400 naming the depth limit."""
    problem = assert_problem(await post_raw(client, content), 400, "32", "BUS_MAX_JSON_DEPTH")
    assert problem["type"] == "urn:lienthong:problem:json-depth"
    await leftovers.assert_none()


async def test_json_at_the_depth_cap_is_not_refused_for_depth(
    client: httpx.AsyncClient, leftovers: Leftovers
) -> None:
    """A form nested exactly to the 32-level cap passes the depth check (and is accepted)."""
    # dossier (1) → form (2) → form.x, the outermost of 30 nested objects (3) … innermost (32)
    answer = await client.post("/v1/dossiers", json=with_value("form.x", _nested(30, 1)))
    assert answer.status_code == 202, answer.text
    assert await leftovers.rows() == (1, 1)


@pytest.mark.parametrize(
    "bad_bytes",
    [
        pytest.param(b"\xff\xfe", id="ff-fe"),
        pytest.param(b"Nguy\xe1\xbb", id="truncated-sequence"),
        pytest.param(b"\xc0\xae", id="overlong"),
        pytest.param(b"\xed\xa0\x80", id="surrogate"),
    ],
)
async def test_invalid_utf8_is_refused(
    client: httpx.AsyncClient, leftovers: Leftovers, bad_bytes: bytes
) -> None:
    """Bytes that are not UTF-8 inside a JSON string get 400 naming UTF-8."""
    content = dossier_bytes(with_value("applicant.full_name", "@@NAME@@"))
    content = content.replace(b"@@NAME@@", bad_bytes)
    problem = assert_problem(await post_raw(client, content), 400, "UTF-8")
    assert problem["type"] == "urn:lienthong:problem:encoding"
    await leftovers.assert_none()


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param("text/plain", id="text-plain"),
        pytest.param("application/xml", id="xml"),
        pytest.param("application/x-www-form-urlencoded", id="form"),
        pytest.param(None, id="none"),
    ],
)
async def test_a_body_that_is_not_declared_json_is_refused(
    client: httpx.AsyncClient, leftovers: Leftovers, content_type: str | None
) -> None:
    """A valid dossier sent with a non-JSON Content-Type gets 415 naming application/json."""
    answer = await post_raw(client, dossier_bytes(), content_type)
    problem = assert_problem(answer, 415, "application/json")
    assert problem["type"] == "urn:lienthong:problem:media-type"
    await leftovers.assert_none()


async def test_json_with_a_charset_parameter_is_accepted(
    client: httpx.AsyncClient, leftovers: Leftovers
) -> None:
    """``application/json; charset=utf-8`` is JSON: the media-type check ignores parameters."""
    answer = await post_raw(client, dossier_bytes(), "application/json; charset=utf-8")
    assert answer.status_code == 202, answer.text
    assert await leftovers.rows() == (1, 1)


async def test_an_overlong_idempotency_key_is_refused(
    client: httpx.AsyncClient, leftovers: Leftovers
) -> None:
    """An Idempotency-Key over 200 characters gets 422 naming the header and its limit."""
    answer = await client.post(
        "/v1/dossiers", json=sample_birth_dossier_json(), headers={"Idempotency-Key": "k" * 201}
    )
    problem = assert_problem(answer, 422)
    error = field_error(problem, "header.idempotency-key")
    assert error["allowed"] == "max_length 200"
    await leftovers.assert_none()


# --- reading dossiers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("not-a-code", id="words"),
        pytest.param("000.00.10.H12-241332-0001", id="impossible-date"),
        pytest.param("000.00.10.H12-240315-1", id="short-sequence"),
    ],
)
async def test_reading_a_malformed_dossier_code_is_refused(
    client: httpx.AsyncClient, code: str
) -> None:
    """GET of something that is not a dossier code gets 422 showing what a code looks like."""
    problem = assert_problem(await client.get(f"/v1/dossiers/{code}"), 422, "000.00.10.H12")
    field_error_item = [e for e in problem["errors"] if e["field"] == "code"]
    assert field_error_item


async def test_reading_an_unknown_dossier_is_not_found(client: httpx.AsyncClient) -> None:
    """GET of a well-formed code the bus never accepted gets a 404 problem naming the code."""
    code = "000.00.10.H12-240315-9999"
    problem = assert_problem(await client.get(f"/v1/dossiers/{code}"), 404, code)
    assert problem["type"] == "urn:lienthong:problem:not-found"


# --- conflicts ---------------------------------------------------------------------------------


async def test_the_same_code_with_other_content_is_a_conflict(
    client: httpx.AsyncClient, leftovers: Leftovers
) -> None:
    """A second dossier with an accepted code but other content gets 409 and changes nothing."""
    first = sample_birth_dossier_json(sequence=1)
    assert (await client.post("/v1/dossiers", json=first)).status_code == 202

    async def published() -> bool:
        # On the broker, and marked sent (which follows the confirm by up to 50 ms).
        view = (await client.get(f"/v1/dossiers/{first['code']}")).json()
        return await leftovers.queued() == 1 and all(e["sent_at"] for e in view["events"])

    await wait_for(published)
    before = (await client.get(f"/v1/dossiers/{first['code']}")).json()

    second = {**first, "summary": "Một nội dung khác"}
    problem = assert_problem(await client.post("/v1/dossiers", json=second), 409, first["code"])
    assert problem["type"] == "urn:lienthong:problem:conflict"
    field_error(problem, "code")

    assert await leftovers.rows() == (1, 1)
    await asyncio.sleep(0.2)
    assert await leftovers.queued() == 1
    after = (await client.get(f"/v1/dossiers/{first['code']}")).json()
    assert after["dossier"]["summary"] == first["summary"]
    assert after == before


async def test_a_reused_idempotency_key_for_another_dossier_is_a_conflict(
    client: httpx.AsyncClient, leftovers: Leftovers
) -> None:
    """An Idempotency-Key already used for one dossier gets 409 when sent with another."""
    key = {"Idempotency-Key": "desk-7-request-1"}
    first = sample_birth_dossier_json(sequence=1)
    second = sample_birth_dossier_json(sequence=2)
    assert (await client.post("/v1/dossiers", json=first, headers=key)).status_code == 202
    answer = await client.post("/v1/dossiers", json=second, headers=key)
    problem = assert_problem(answer, 409, "Idempotency-Key")
    field_error(problem, "Idempotency-Key")
    assert await leftovers.rows() == (1, 1)
    assert (await client.get(f"/v1/dossiers/{second['code']}")).status_code == 404


# --- personal data -----------------------------------------------------------------------------


def _with_channel(value: Any) -> Dossier:
    """The sample (which carries two valid CCCDs) with a bad sha256 and ``value`` as channel."""
    body = with_value("documents[0].sha256", "not hex")
    body["channel"] = value
    return body


CCCD_CASES = [
    pytest.param(with_value("documents[0].sha256", "not hex"), id="valid-cccd-bad-sha256"),
    pytest.param(_with_channel(FATHER_CCCD), id="cccd-as-channel"),
    pytest.param(with_value("received_at", FATHER_CCCD), id="cccd-as-received_at"),
    pytest.param(with_value("code", FATHER_CCCD), id="cccd-as-code"),
    pytest.param(with_value("procedure_code", FATHER_CCCD), id="cccd-as-procedure"),
    pytest.param(with_value("receiving_agency", FATHER_CCCD), id="cccd-as-agency"),
    pytest.param(with_value("summary", FATHER_CCCD + "x" * 2000), id="cccd-in-long-summary"),
    pytest.param(with_value("applicant.nickname", FATHER_CCCD), id="cccd-in-extra-field"),
    pytest.param(with_value("applicant.identity_number", FATHER_CCCD + "9"), id="near-miss"),
]


@pytest.mark.parametrize("body", CCCD_CASES)
async def test_a_refusal_never_echoes_a_cccd(
    client: httpx.AsyncClient, leftovers: Leftovers, body: Dossier
) -> None:
    """A refused dossier's answer does not contain any CCCD it carried, whole or near-miss."""
    answer = await client.post("/v1/dossiers", json=body)
    assert_problem(answer, 422)
    for cccd in (FATHER_CCCD, MOTHER_CCCD, FATHER_CCCD[1:], FATHER_CCCD[:-1]):
        assert cccd not in answer.text
    await leftovers.assert_none()


async def test_invalid_json_never_echoes_a_cccd(
    client: httpx.AsyncClient, leftovers: Leftovers
) -> None:
    """A JSON syntax error next to a CCCD is reported by position, without quoting the body."""
    content = b'{"applicant": {"identity_number": ' + FATHER_CCCD.encode() + b"}"
    answer = await post_raw(client, content)
    assert_problem(answer, 400, "line 1")
    assert FATHER_CCCD not in answer.text
    assert FATHER_CCCD.lstrip("0") not in answer.text
    await leftovers.assert_none()


# --- bad requests beside good ones -------------------------------------------------------------


async def test_bad_requests_do_not_disturb_a_good_one(
    client: httpx.AsyncClient, leftovers: Leftovers
) -> None:
    """Twenty bad requests sent at the same time as a good one leave it accepted, and alone."""
    bad: list[Awaitable[httpx.Response]] = []
    for index in range(20):
        kind = index % 5
        if kind == 0:
            bad.append(post_raw(client, _TRUNCATED))
        elif kind == 1:
            bad.append(client.post("/v1/dossiers", json=with_value("channel", "abc")))
        elif kind == 2:
            bad.append(post_raw(client, b"[" * 5000 + b"]" * 5000))
        elif kind == 3:
            bad.append(post_raw(client, _padded_dossier(2 * MAX_BODY)))
        else:
            bad.append(client.post("/v1/dossiers", json=with_value("procedure_code", "2.000001")))
    good = sample_birth_dossier_json(sequence=42)
    answers = await asyncio.gather(*bad[:10], client.post("/v1/dossiers", json=good), *bad[10:])
    accepted = answers.pop(10)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["dossier_code"] == good["code"]
    assert all(400 <= a.status_code < 500 for a in answers), [a.status_code for a in answers]
    assert all(a.headers["content-type"] == PROBLEM_JSON for a in answers)
    assert await leftovers.rows() == (1, 1)

    async def published() -> bool:
        return await leftovers.queued() == 1

    await wait_for(published)
