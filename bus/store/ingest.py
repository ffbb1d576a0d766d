"""Writing accepted dossiers: dossier row, outbox event and ingest hop in one transaction.

A batch of requests costs one transaction: one lookup for every code and idempotency key in the
batch, then bulk inserts. Duplicates (same key or same code with the same content) get the
original answer; a code or key reused for different content is a conflict.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.store.audit import append_audit, audit_records
from bus.store.database import one_of_bound, write_transaction
from bus.store.linkage import RunStart
from bus.store.outbox import Handover, insert_events
from bus.store.schema import dossiers, hops, status_history
from contracts import Dossier, DossierStatus, EventEnvelope

if TYPE_CHECKING:  # the engine builds on the store; it is handed in at run time
    from bus.linkage.engine import LinkageEngine


@dataclass(frozen=True, slots=True)
class IngestRequest:
    """One accepted-looking dossier, with its event already built, waiting for the commit."""

    dossier_row: dict[str, Any]
    outbox_row: dict[str, Any]
    hop_row: dict[str, Any]
    idempotency_key: str | None
    #: The dossier and its ``dossier.submitted`` event, for starting its linkage run.
    dossier: Dossier | None = None
    event: EventEnvelope | None = None

    @property
    def code(self) -> str:
        """The dossier code."""
        return str(self.dossier_row["code"])

    @property
    def content_hash(self) -> str:
        """SHA-256 of the canonical JSON of the dossier."""
        return str(self.dossier_row["content_hash"])

    @property
    def event_id(self) -> str:
        """Id of the ``dossier.submitted`` event this request would emit."""
        return str(self.outbox_row["event_id"])


@dataclass(frozen=True, slots=True)
class IngestReceipt:
    """The answer to an ingest: the dossier code and the id of the event that carries it."""

    dossier_code: str
    event_id: str
    replayed: bool


class IngestConflict(Exception):
    """Raised when a dossier code or idempotency key already stands for different content."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


async def write_ingest_batch(
    engine: AsyncEngine,
    requests: Sequence[IngestRequest],
    *,
    linkage: LinkageEngine | None = None,
    handover: Handover | None = None,
) -> list[IngestReceipt | Exception]:
    """Commit a batch of ingest requests; one result (receipt or conflict) per request.

    With ``linkage``, a new dossier whose procedure starts a bundle starts its run in the same
    transaction: accepted means its first steps are ordered. With ``handover``, the outbox rows
    are leased to its relay and listed in it once committed.
    """
    for attempt in range(3):
        if handover is not None:
            handover.events.clear()  # a retried transaction inserts its rows again
        try:
            return await _write_once(engine, requests, linkage, handover)
        except IntegrityError:
            # Another process inserted one of these codes between our lookup and our insert;
            # the next attempt's lookup sees it and answers it as a duplicate or conflict.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def _write_once(
    engine: AsyncEngine,
    requests: Sequence[IngestRequest],
    linkage: LinkageEngine | None,
    handover: Handover | None,
) -> list[IngestReceipt | Exception]:
    codes = [r.code for r in requests]
    keys = [r.idempotency_key for r in requests if r.idempotency_key]
    lookup = _lookup(engine.dialect.name, by_key=bool(keys))

    async with write_transaction(engine) as connection:
        known = (await connection.execute(lookup, {"codes": codes, "keys": keys})).all()
        by_code: dict[str, tuple[str, str]] = {}
        by_key: dict[str, tuple[str, str, str]] = {}
        for row in known:
            by_code[row.code] = (row.content_hash, row.accepted_event_id)
            if row.idempotency_key:
                by_key[row.idempotency_key] = (row.code, row.content_hash, row.accepted_event_id)

        results: list[IngestReceipt | Exception] = []
        new: list[IngestRequest] = []
        for request in requests:
            result = _resolve(request, by_code, by_key)
            if result is None:
                new.append(request)
                by_code[request.code] = (request.content_hash, request.event_id)
                if request.idempotency_key:
                    by_key[request.idempotency_key] = (
                        request.code,
                        request.content_hash,
                        request.event_id,
                    )
                result = IngestReceipt(request.code, request.event_id, replayed=False)
            results.append(result)

        if new:
            done_at = datetime.now(UTC)
            await connection.execute(dossiers.insert(), [r.dossier_row for r in new])
            await connection.execute(
                status_history.insert(),
                [
                    {
                        "dossier_code": r.code,
                        "sequence": r.dossier_row["sequence"],
                        "status": r.dossier_row["status"],
                        "changed_at": r.dossier_row["received_at"],
                        "recorded_at": done_at,
                    }
                    for r in new
                ],
            )
            hop_rows = [{**r.hop_row, "done_at": done_at} for r in new]
            await connection.execute(hops.insert(), hop_rows)
            orders: list[dict[str, Any]] = []
            if linkage is not None:
                orders = await linkage.start(connection, _run_starts(new), done_at)
            # One insert, in commit order: a dossier's submitted event before its step orders.
            outbox_rows = [*(r.outbox_row for r in new), *orders]
            await insert_events(connection, outbox_rows, handover)
            # Last: the audit head stays locked from here to the commit.
            await append_audit(connection, audit_records(hop_rows, outbox_rows), done_at)
    return results


@functools.cache
def _lookup(dialect_name: str, *, by_key: bool) -> sa.Select[Any]:
    """The dossiers a batch repeats, by code (and by idempotency key when some have one);
    built once per dialect (see bus.store.database.one_of_bound)."""
    condition = one_of_bound(dossiers.c.code, "codes", dialect_name)
    if by_key:
        condition = sa.or_(
            condition, one_of_bound(dossiers.c.idempotency_key, "keys", dialect_name)
        )
    return sa.select(
        dossiers.c.code,
        dossiers.c.idempotency_key,
        dossiers.c.content_hash,
        dossiers.c.accepted_event_id,
    ).where(condition)


def _run_starts(new: Sequence[IngestRequest]) -> list[RunStart]:
    """The new dossiers as the engine's run starts (it keeps those whose bundle starts)."""
    return [
        RunStart(
            request.dossier,
            request.event,
            DossierStatus(request.dossier_row["status"]),
            request.dossier_row["sequence"],
        )
        for request in new
        if request.dossier is not None and request.event is not None
    ]


def _resolve(
    request: IngestRequest,
    by_code: dict[str, tuple[str, str]],
    by_key: dict[str, tuple[str, str, str]],
) -> IngestReceipt | Exception | None:
    """The answer for a request that repeats an earlier one, or ``None`` when it is new."""
    if request.idempotency_key and request.idempotency_key in by_key:
        code, content_hash, event_id = by_key[request.idempotency_key]
        if code == request.code and content_hash == request.content_hash:
            return IngestReceipt(code, event_id, replayed=True)
        return IngestConflict(
            "this Idempotency-Key was already used for a different request "
            f"(dossier {code}); use a new key for a new request",
            field="Idempotency-Key",
        )
    if request.code in by_code:
        content_hash, event_id = by_code[request.code]
        if content_hash == request.content_hash:
            return IngestReceipt(request.code, event_id, replayed=True)
        return IngestConflict(
            f"dossier {request.code} was already accepted with different content; "
            "a dossier code is accepted once",
            field="code",
        )
    return None
