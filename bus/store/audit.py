"""The audit log in the store: appending hash-chained records, and reading them back in order.

Records are appended inside the transactions that commit the effects they record (hops and
outbox events), so a hop or an event exists exactly when its evidence does. The head row is
locked as the transaction's last step and held until its commit: appenders in every process
take seqs one transaction after another, in commit order, and the chain has no gaps. That lock
is the log's cost: writers on the same store commit one at a time for the length of a commit
(SQLite's writers already do), with one head read, one bulk insert and one head update each.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.schema import ScalarElementColumnDefault

from bus.audit.chain import SealedContent, content_digest, jsonable, link_hash
from bus.audit.walk import StoredRecord
from bus.store.schema import audit_head, audit_log, dossiers, hops

__all__ = [
    "AuditDraft",
    "ChainHeadRow",
    "append_audit",
    "audit_records",
    "chain_links",
    "dossier_document",
    "dossier_records",
    "read_head",
    "records_after",
    "snapshot",
]

EVENT: Final = "event"
HOP: Final = "hop"
#: Hop columns with a default the inserts may leave out: the record says what was stored.
_HOP_DEFAULTS: Final = {
    column.name: column.default.arg
    for column in hops.columns
    if isinstance(column.default, ScalarElementColumnDefault)
}
_HOP_FIELDS: Final = tuple(column.name for column in hops.columns if column.name != "id")
_OUTBOX_FIELDS: Final = ("event_id", "exchange", "routing_key", "mandatory", "created_at")


# Built once: every write transaction runs them (see bus.store.database.one_of_bound).
_READ_HEAD: Final = sa.select(audit_head.c.last_seq, audit_head.c.last_hash).where(
    audit_head.c.id == 1
)
#: On PostgreSQL the head row is locked until the commit; SQLite's writer already holds the
#: database's write lock.
_LOCK_HEAD: Final = _READ_HEAD.with_for_update()
_INSERT_RECORDS: Final = audit_log.insert()
_MOVE_HEAD: Final = (
    sa.update(audit_head)
    .where(audit_head.c.id == 1)
    .values(last_seq=sa.bindparam("seq"), last_hash=sa.bindparam("hash"))
)


@dataclass(frozen=True, slots=True)
class AuditDraft:
    """A record to append: what it is, about which dossier, and its content."""

    kind: str
    dossier_code: str | None
    subject: str
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ChainHeadRow:
    """The head row: the chain's last seq and hash."""

    seq: int
    hash: str


def audit_records(
    hop_rows: Iterable[Mapping[str, Any]] = (), outbox_rows: Iterable[Mapping[str, Any]] = ()
) -> list[AuditDraft]:
    """One ``hop`` record per hop row and one ``event`` record per outbox row, as inserted."""
    drafts = [
        AuditDraft(
            HOP,
            row["dossier_code"],
            row["message_id"],
            jsonable({name: row.get(name, _HOP_DEFAULTS.get(name)) for name in _HOP_FIELDS}),
        )
        for row in hop_rows
    ]
    drafts += [
        AuditDraft(EVENT, row["dossier_code"], row["event_id"], _event_payload(row))
        for row in outbox_rows
    ]
    return drafts


def _event_payload(row: Mapping[str, Any]) -> dict[str, Any]:
    """The event as the outbox holds it; its body as text (JSON is UTF-8), the bytes kept."""
    payload = jsonable({name: row.get(name) for name in _OUTBOX_FIELDS})
    body = row["payload"]
    try:
        payload["body"] = bytes(body).decode("utf-8")
    except UnicodeDecodeError:
        payload["body_base64"] = base64.b64encode(body).decode("ascii")
    return dict(payload)


async def append_audit(
    connection: AsyncConnection, records: Sequence[AuditDraft], now: datetime
) -> None:
    """Append ``records`` to the chain in the caller's transaction; call it last, just before
    the commit, since the head stays locked from here until then."""
    if not records:
        return
    head = _LOCK_HEAD if connection.dialect.name == "postgresql" else _READ_HEAD
    seq, last_hash = (await connection.execute(head)).one()
    rows: list[dict[str, Any]] = []
    for draft in records:
        seq += 1
        digest = content_digest(
            SealedContent(seq, now, draft.kind, draft.dossier_code, draft.subject, draft.payload)
        )
        record_hash = link_hash(seq, last_hash, digest)
        rows.append(
            {
                "seq": seq,
                "recorded_at": now,
                "kind": draft.kind,
                "dossier_code": draft.dossier_code,
                "subject": draft.subject,
                "payload": draft.payload,
                "digest": digest,
                "prev_hash": last_hash,
                "hash": record_hash,
            }
        )
        last_hash = record_hash
    await connection.execute(_INSERT_RECORDS, rows)
    await connection.execute(_MOVE_HEAD, {"seq": seq, "hash": last_hash})


@asynccontextmanager
async def snapshot(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A read-only transaction that sees one state of the store from its first read to its end.

    The head and the records then agree exactly, even while other processes append: PostgreSQL
    gives it with REPEATABLE READ, SQLite's WAL with any read transaction.
    """
    async with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execution_options(isolation_level="REPEATABLE READ")
        async with connection.begin():
            yield connection


async def read_head(connection: AsyncConnection) -> ChainHeadRow | None:
    """The head row, or ``None`` when it is missing (deleted)."""
    row = (await connection.execute(_READ_HEAD)).first()
    return None if row is None else ChainHeadRow(int(row[0]), str(row[1]))


async def records_after(
    connection: AsyncConnection, after_seq: int, limit: int
) -> list[StoredRecord]:
    """Up to ``limit`` records with a seq above ``after_seq``, in seq order."""
    rows = await connection.execute(
        sa.select(audit_log)
        .where(audit_log.c.seq > after_seq)
        .order_by(audit_log.c.seq)
        .limit(limit)
    )
    return [_stored(row) for row in rows]


async def dossier_records(
    connection: AsyncConnection, dossier_code: str, up_to_seq: int
) -> list[StoredRecord]:
    """The dossier's records up to ``up_to_seq``, in seq order."""
    rows = await connection.execute(
        sa.select(audit_log)
        .where(audit_log.c.dossier_code == dossier_code, audit_log.c.seq <= up_to_seq)
        .order_by(audit_log.c.seq)
    )
    return [_stored(row) for row in rows]


async def chain_links(
    connection: AsyncConnection, first_seq: int, last_seq: int, *, batch: int = 10_000
) -> AsyncIterator[tuple[int, str, str, str]]:
    """(seq, digest, prev_hash, hash) of every record from ``first_seq`` to ``last_seq``."""
    after = first_seq - 1
    while after < last_seq:
        rows = (
            await connection.execute(
                sa.select(
                    audit_log.c.seq, audit_log.c.digest, audit_log.c.prev_hash, audit_log.c.hash
                )
                .where(audit_log.c.seq > after, audit_log.c.seq <= last_seq)
                .order_by(audit_log.c.seq)
                .limit(batch)
            )
        ).all()
        if not rows:
            return
        for row in rows:
            yield int(row[0]), str(row[1]), str(row[2]), str(row[3])
        after = int(rows[-1][0])


async def dossier_document(connection: AsyncConnection, code: str) -> dict[str, Any] | None:
    """The dossier's canonical document as stored, or ``None`` for an unknown dossier."""
    row = (
        await connection.execute(sa.select(dossiers.c.document).where(dossiers.c.code == code))
    ).first()
    return None if row is None else dict(row[0])


def _stored(row: sa.Row[Any]) -> StoredRecord:
    return StoredRecord(
        id=row.id,
        seq=row.seq,
        recorded_at=row.recorded_at,
        kind=row.kind,
        dossier_code=row.dossier_code,
        subject=row.subject,
        payload=row.payload,
        digest=row.digest,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )
