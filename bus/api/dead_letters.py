"""``/v1/dead-letters``: what failed for good, for operators to inspect, replay or discard.

Bulk actions are custom methods on the collection (``POST /v1/dead-letters:replay``, as Google's
API design guide writes them): a path ``/v1/dead-letters/replay`` would read as the dead letter
whose id is "replay".

Operators alone may use these routes (they hold whole messages, personal data included, and a
replay acts on partners). Dead letters come from the parking queue through the keeper
(:mod:`bus.dead_letters`); a replay sends the message back to the queue it failed in, where the
consumer's dedup guard applies it at most once however often it is replayed.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any, Final, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from bus.api.auth import require_operator
from bus.api.body import read_json_model
from bus.api.problems import PROBLEM_JSON, Problem
from bus.dead_letters import discard_dead_letters, replay_dead_letters
from bus.security.clients import AgencyClient
from bus.store import dead_letters as store
from bus.store.dead_letters import DeadLetterQuery
from contracts.codes import DOSSIER_CODE_PATTERN, PROCEDURE_CODE_PATTERN

router = APIRouter(prefix="/v1/dead-letters", tags=["dead letters"])

_PROBLEM = {"content": {PROBLEM_JSON: {}}, "description": "Problem details (RFC 9457)"}
#: Most dead letters one bulk request acts on; ``remaining`` says how many more match.
MAX_BULK = 10_000

Operator = Annotated[AgencyClient, Depends(require_operator)]
#: Ids are 64-bit: a larger number is refused (422) before it reaches the database.
_MAX_ID: Final = 2**63 - 1
DeadLetterId = Annotated[int, Path(ge=1, le=_MAX_ID, description="The dead letter's id")]
StateFilter = Literal["parked", "replayed", "discarded", "any"]


class DeadLetterFilter(BaseModel):
    """Which dead letters: every field given narrows the set."""

    state: StateFilter = Field(default="parked", description="Their state; any: all of them")
    connector: str | None = Field(
        default=None, pattern=r"^[a-z][a-z0-9_]{1,40}$", description="Connector id"
    )
    procedure: str | None = Field(
        default=None, pattern=PROCEDURE_CODE_PATTERN, description="Mã TTHC"
    )
    error_class: Literal["transient", "permanent"] | None = Field(
        default=None, description="transient: retries ran out; permanent: never retried"
    )
    fault_code: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_.:\-]{1,64}$", description="e.g. MAPPING_ERROR"
    )
    dossier_code: str | None = Field(
        default=None, pattern=DOSSIER_CODE_PATTERN, description="Mã hồ sơ"
    )
    parked_after: datetime | None = Field(
        default=None, description="Parked at or after this instant (ISO 8601 with offset)"
    )
    parked_before: datetime | None = Field(
        default=None, description="Parked before this instant (ISO 8601 with offset)"
    )

    @model_validator(mode="after")
    def _aware(self) -> DeadLetterFilter:
        for moment in (self.parked_after, self.parked_before):
            if moment is not None and moment.tzinfo is None:
                raise ValueError("give instants with their offset, e.g. 2024-03-15T08:00:00+07:00")
        return self

    def query(self, ids: tuple[int, ...] | None = None) -> DeadLetterQuery:
        """The store's query for this filter."""
        return DeadLetterQuery(
            state=None if self.state == "any" else self.state,
            connector=self.connector,
            procedure_code=self.procedure,
            error_class=self.error_class,
            fault_code=self.fault_code,
            dossier_code=self.dossier_code,
            parked_after=self.parked_after,
            parked_before=self.parked_before,
            ids=ids,
        )


class DeadLetterSummary(BaseModel):
    """One parked message: where it failed, why, and what became of it."""

    id: int
    message_id: str = Field(description="The event id (AMQP message_id)")
    dossier_code: str | None
    connector: str | None = Field(description="The connector whose delivery failed")
    procedure_code: str | None
    event_type: str | None = Field(description="The CloudEvent type of the message")
    queue: str | None = Field(description="The queue it failed in, where a replay sends it")
    error_class: str = Field(description="transient (retries ran out) or permanent")
    fault_code: str
    reason: str
    attempts: int = Field(description="Deliveries tried before it was parked")
    replays: int = Field(description="Times it had been replayed before this parking")
    parked_at: datetime
    state: str = Field(description="parked, replayed or discarded")
    resolved_at: datetime | None
    resolved_by: str | None = Field(description="The operator who replayed or discarded it")
    resolution_note: str | None = Field(description="Why it was discarded")


class DeadLetterDetail(DeadLetterSummary):
    """One dead letter in full: its headers and its body as parked."""

    routing_key: str
    content_type: str | None
    correlation_id: str | None
    headers: dict[str, Any]
    body: Any = Field(description="The body, parsed, when it is JSON")
    body_base64: str | None = Field(description="The body's bytes, when it is not JSON")


class DeadLetterPage(BaseModel):
    """Dead letters matching the filter, newest first, a page at a time."""

    total: int = Field(description="How many match the filter in all")
    dead_letters: list[DeadLetterSummary]
    next_before_id: int | None = Field(description="Pass as before_id for the next page")


class SelectionFilter(DeadLetterFilter):
    """A filter in a request body: a misspelt field is refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


class Selection(BaseModel):
    """Which dead letters a bulk action takes: these ids, or all that match a filter."""

    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[int, Field(ge=1, le=_MAX_ID)]] | None = Field(
        default=None, max_length=MAX_BULK
    )
    filter: SelectionFilter | None = None

    @model_validator(mode="after")
    def _one_way(self) -> Selection:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("give either ids or filter (filter {} takes every parked one)")
        return self


class Discard(BaseModel):
    """Why dead letters are discarded: kept with each of them and in its dossier's history."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=3, max_length=2000, pattern=r"\S")


class BulkDiscard(Selection, Discard):
    """Dead letters to discard (ids or filter), and why."""


class Outcome(BaseModel):
    """What an action did."""

    done: list[int] = Field(description="The dead letters replayed (or discarded)")
    skipped: list[int] = Field(description="Those no longer parked: left as they were")
    remaining: int = Field(description="Parked ones matching the filter left for a next call")


def _body_of(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of a route that reads its body itself (after authentication)."""
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


@router.get(
    "",
    response_model=DeadLetterPage,
    summary="List dead letters, filtered",
    responses={403: _PROBLEM, 422: _PROBLEM},
)
async def list_dead_letters(
    request: Request,
    _operator: Operator,
    where: Annotated[DeadLetterFilter, Query()],
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before_id: Annotated[
        int | None, Query(ge=1, le=_MAX_ID, description="Page: ids below this one")
    ] = None,
) -> DeadLetterPage:
    """Dead letters newest first; ``total`` counts all that match."""
    engine = request.app.state.runtime.engine
    rows = await store.find_dead_letters(engine, where.query(), limit=limit, before_id=before_id)
    total = await store.count_dead_letters(engine, where.query())
    return DeadLetterPage(
        total=total,
        dead_letters=[DeadLetterSummary.model_validate(row) for row in rows],
        next_before_id=rows[-1]["id"] if len(rows) == limit else None,
    )


@router.get(
    "/{dead_letter_id}",
    response_model=DeadLetterDetail,
    summary="One dead letter in full",
    responses={403: _PROBLEM, 404: _PROBLEM, 422: _PROBLEM},
)
async def show_dead_letter(
    request: Request, _operator: Operator, dead_letter_id: DeadLetterId
) -> DeadLetterDetail:
    """Its body, headers, reason and attempts, as parked."""
    row = await _existing(request, dead_letter_id)
    body, body_base64 = _body(row["body"])
    return DeadLetterDetail.model_validate({**row, "body": body, "body_base64": body_base64})


@router.post(
    "/{dead_letter_id}/replay",
    response_model=Outcome,
    summary="Replay one dead letter",
    responses={403: _PROBLEM, 404: _PROBLEM, 409: _PROBLEM, 422: _PROBLEM, 503: _PROBLEM},
)
async def replay_one(request: Request, operator: Operator, dead_letter_id: DeadLetterId) -> Outcome:
    """Send it back to the queue it failed in (applied at most once, however often replayed)."""
    await _parked(request, dead_letter_id)
    runtime = request.app.state.runtime
    report = await replay_dead_letters(
        runtime.writer, runtime.broker, [dead_letter_id], by=operator.id
    )
    return Outcome(done=report.replayed, skipped=report.skipped, remaining=0)


@router.post(
    ":replay",
    response_model=Outcome,
    summary="Replay many dead letters: by ids, or all that match a filter",
    responses={
        400: _PROBLEM,
        403: _PROBLEM,
        413: _PROBLEM,
        415: _PROBLEM,
        422: _PROBLEM,
        503: _PROBLEM,
    },
    openapi_extra=_body_of(Selection),
)
async def replay_many(request: Request, operator: Operator) -> Outcome:
    """Up to 10,000 per call, oldest first; ``remaining`` says how many more match."""
    selection = await read_json_model(request, Selection, title="Invalid request")
    runtime = request.app.state.runtime
    ids, remaining = await _selected(request, selection)
    report = await replay_dead_letters(runtime.writer, runtime.broker, ids, by=operator.id)
    return Outcome(done=report.replayed, skipped=report.skipped, remaining=remaining)


@router.post(
    "/{dead_letter_id}/discard",
    response_model=Outcome,
    summary="Discard one dead letter, saying why",
    responses={
        400: _PROBLEM,
        403: _PROBLEM,
        404: _PROBLEM,
        409: _PROBLEM,
        413: _PROBLEM,
        415: _PROBLEM,
        422: _PROBLEM,
    },
    openapi_extra=_body_of(Discard),
)
async def discard_one(
    request: Request, operator: Operator, dead_letter_id: DeadLetterId
) -> Outcome:
    """It stays on record (and in its dossier's history) with the reason; it is not delivered."""
    discard = await read_json_model(request, Discard, title="Invalid request")
    await _parked(request, dead_letter_id)
    done = await discard_dead_letters(
        request.app.state.runtime.writer, [dead_letter_id], by=operator.id, reason=discard.reason
    )
    return Outcome(done=done, skipped=[i for i in [dead_letter_id] if i not in done], remaining=0)


@router.post(
    ":discard",
    response_model=Outcome,
    summary="Discard many dead letters: by ids, or all that match a filter",
    responses={400: _PROBLEM, 403: _PROBLEM, 413: _PROBLEM, 415: _PROBLEM, 422: _PROBLEM},
    openapi_extra=_body_of(BulkDiscard),
)
async def discard_many(request: Request, operator: Operator) -> Outcome:
    """Up to 10,000 per call; ``remaining`` says how many more match."""
    selection = await read_json_model(request, BulkDiscard, title="Invalid request")
    ids, remaining = await _selected(request, selection)
    done = await discard_dead_letters(
        request.app.state.runtime.writer, ids, by=operator.id, reason=selection.reason
    )
    return Outcome(done=done, skipped=sorted(set(ids) - set(done)), remaining=remaining)


async def _existing(request: Request, dead_letter_id: int) -> dict[str, Any]:
    row = await store.read_dead_letter(request.app.state.runtime.engine, dead_letter_id)
    if row is None:
        raise Problem(
            404, "No such dead letter", f"no dead letter {dead_letter_id}", kind="not-found"
        )
    return row


async def _parked(request: Request, dead_letter_id: int) -> None:
    row = await _existing(request, dead_letter_id)
    if row["state"] != "parked":
        raise Problem(
            409,
            "Dead letter already handled",
            f"dead letter {dead_letter_id} was {row['state']} by {row['resolved_by']} at "
            f"{row['resolved_at']:%Y-%m-%d %H:%M:%S} UTC; if it failed again, it is parked "
            "anew under another id",
            kind="conflict",
        )


async def _selected(request: Request, selection: Selection) -> tuple[list[int], int]:
    """The ids a bulk action takes, and how many more parked ones match beyond the cap."""
    if selection.ids is not None:
        return selection.ids, 0
    assert selection.filter is not None
    query = selection.filter.model_copy(update={"state": "parked"}).query()
    engine = request.app.state.runtime.engine
    ids = await store.matching_ids(engine, query, limit=MAX_BULK)
    total = await store.count_dead_letters(engine, query)
    return ids, max(0, total - len(ids))


def _body(raw: bytes) -> tuple[Any, str | None]:
    try:
        return orjson.loads(raw), None
    except orjson.JSONDecodeError:
        return None, base64.b64encode(raw).decode("ascii")
