"""Recording partner records: dedup record, hop, forward-only status, event (and poll position).

Two roads bring a partner's status changes: a poller reads them from the partner's list, or the
partner pushes them (``POST /v1/inbound/{connector}``). Both are committed here, by the same
rules, so a change is applied once and in order whichever road it took.

One page of partner records is committed in one transaction together with the poller's new
position (watermark and cursor), so a restart resumes exactly where the committed work ends.
Each readable record is claimed once per connector in the dedup record (a record listed again
changes nothing); a record the mapping could not read is filed as a ``parked`` hop, once, and no
dedup record is kept for it, so that it applies when it is listed again after the mapping is
fixed.

A partner's status only moves its dossier forward. Partners date their records (the judicial
software to the day), so a record is *stale* when it is older than the last change a poll or a
push applied to the dossier, or as old but less advanced (``processing`` after ``processed`` on
the same day). The time of the last applied change is the ``sent_at`` of its ``poll`` or
``receive`` hop: the time the partner gave the record.

A pushed record is answered at once, so it is committed on its own (:func:`commit_pushed`): no
position, and a record about a dossier this bus does not know is refused rather than filed, so
that the partner's retry applies once the dossier has arrived.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bus.store.audit import append_audit, audit_records
from bus.store.database import write_transaction
from bus.store.deliveries import (
    StatusMove,
    StatusTransition,
    claim_message_ids,
    lock_dossiers,
    move_dossiers,
)
from bus.store.linkage import StepAnswer
from bus.store.schema import hops, outbox, poll_cursors
from contracts import FINISHED_STATUSES, DossierStatus, StatusChange

if TYPE_CHECKING:  # the engine builds on the store; it is handed in at run time
    from bus.linkage.engine import LinkageEngine

__all__ = [
    "POLL_HOP",
    "RECEIVE_HOP",
    "PollOutcome",
    "PollPosition",
    "PolledEntry",
    "PolledEventFactory",
    "commit_polled",
    "commit_pushed",
    "dated_in_future",
    "is_stale",
    "load_position",
    "save_position",
]

POLL_HOP: Final = "poll"
"""The ``kind`` of the hop that records one polled record."""

RECEIVE_HOP: Final = "receive"
"""The ``kind`` of the hop that records one record a partner pushed."""

# Hops whose ``sent_at`` is the partner's date of an applied change: later ones order against it.
_PARTNER_CHANGE_HOPS: Final = (POLL_HOP, RECEIVE_HOP)

PollOutcome = Literal["applied", "duplicate", "stale", "unknown_dossier", "parked", "still_parked"]
"""What became of one polled or pushed record: also its hop's outcome. A ``duplicate`` (a readable
record applied before) and a record ``still_parked`` (unreadable, and filed before) write no hop;
neither does a pushed record about an ``unknown_dossier`` (it is refused)."""

# How far along a dossier is, to order two changes a partner dates alike (a day-only date).
_PROGRESS: Final[dict[DossierStatus, int]] = {
    DossierStatus.NEW: 0,
    DossierStatus.ACCEPTED: 1,
    DossierStatus.PROCESSING: 2,
    DossierStatus.SUPPLEMENT_REQUESTED: 2,
    DossierStatus.FINANCIAL_OBLIGATION: 2,
    DossierStatus.PROCESSED: 3,
    DossierStatus.NOT_ACCEPTED: 4,
    DossierStatus.WITHDRAWN: 4,
    DossierStatus.STOPPED: 4,
    DossierStatus.RESULT_RETURNED: 4,
}


@dataclass(frozen=True, slots=True)
class PollPosition:
    """Where a poller reads next: the start of its window (watermark) and its cursor there.

    Everything the partner listed before the watermark has been applied and acknowledged; the
    cursor is the partner's paging position inside the window that starts at the watermark.
    """

    watermark: datetime
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class PolledEntry:
    """One partner record as a poller read it (or as its partner pushed it), ready to commit."""

    consumer: str
    #: Stable id of the record at the partner: the dedup key.
    record_key: str
    hop_row: dict[str, Any]
    #: The change the mapping read; ``None`` when it could not read the record (parked).
    change: StatusChange | None


#: Builds the outbox row announcing a polled change that moved its dossier.
PolledEventFactory = Callable[[StatusChange, StatusTransition], dict[str, Any]]


FUTURE_TOLERANCE: Final = timedelta(minutes=10)
"""How far ahead of the bus's clock a partner may date a change. A change dated later is
refused: once applied, it would make every true change after it look older, hence stale."""


def dated_in_future(change: StatusChange, now: datetime) -> bool:
    """Whether the partner dated ``change`` beyond :data:`FUTURE_TOLERANCE` from ``now``."""
    return change.changed_at > now + FUTURE_TOLERANCE


def is_stale(
    change: StatusChange, current: DossierStatus, last_changed_at: datetime | None
) -> bool:
    """Whether ``change`` would move its dossier back.

    ``last_changed_at`` is when the partner dated the last change a poll or a push applied to it
    (``None`` when none did: then only a less advanced status is stale).
    """
    if last_changed_at is None:
        return _PROGRESS[change.status] < _PROGRESS[current]
    return (change.changed_at, _PROGRESS[change.status]) < (last_changed_at, _PROGRESS[current])


async def load_position(engine: AsyncEngine, connector_id: str) -> PollPosition | None:
    """The committed position of a connector's poller, or ``None`` before its first poll."""
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                sa.select(poll_cursors.c.watermark, poll_cursors.c.cursor).where(
                    poll_cursors.c.connector_id == connector_id
                )
            )
        ).first()
    return None if row is None else PollPosition(row.watermark, row.cursor)


async def save_position(engine: AsyncEngine, connector_id: str, position: PollPosition) -> None:
    """Commit a poller's position on its own (no records with it)."""
    async with write_transaction(engine) as connection:
        await _write_position(connection, connector_id, position, datetime.now(UTC))


async def commit_polled(
    engine: AsyncEngine,
    entries: Sequence[PolledEntry],
    event_row: PolledEventFactory,
    *,
    connector_id: str,
    position: PollPosition,
    linkage: LinkageEngine | None = None,
) -> list[PollOutcome]:
    """Commit one page of polled records and the poller's new position in one transaction.

    Says per entry what became of it. Entries of one dossier are applied in the order of their
    partner dates, whatever order the partner listed them in.
    """
    now = datetime.now(UTC)
    async with write_transaction(engine) as connection:
        outcomes = await _record(
            connection, entries, event_row, now, refuse_unknown=False, linkage=linkage
        )
        await _write_position(connection, connector_id, position, now)
    return outcomes


async def commit_pushed(
    engine: AsyncEngine,
    entries: Sequence[PolledEntry],
    event_row: PolledEventFactory,
    *,
    linkage: LinkageEngine | None = None,
) -> list[PollOutcome]:
    """Commit records a partner pushed, in one transaction; says per entry what became of it.

    The rules of :func:`commit_polled`, without a position; an entry about a dossier this store
    does not know is ``unknown_dossier`` and leaves nothing behind (no dedup record, no hop).
    """
    now = datetime.now(UTC)
    async with write_transaction(engine) as connection:
        return await _record(
            connection, entries, event_row, now, refuse_unknown=True, linkage=linkage
        )


async def _record(
    connection: AsyncConnection,
    entries: Sequence[PolledEntry],
    event_row: PolledEventFactory,
    now: datetime,
    *,
    refuse_unknown: bool,
    linkage: LinkageEngine | None,
) -> list[PollOutcome]:
    """Dedup records, forward-only moves, hops and events of ``entries``, in ``connection``.

    A record about a dossier in a linkage run is the answer of its connector's step: the
    engine moves the run and decides the dossier's status (:mod:`bus.linkage.engine`).
    """
    outcomes: dict[int, PollOutcome] = {}
    readable = [i for i, entry in enumerate(entries) if entry.change is not None]
    if refuse_unknown:
        # Checked before claiming: a dedup record would turn the partner's later retry, once
        # the dossier has arrived, into a duplicate that is never applied.
        known = await lock_dossiers(
            connection, {_change(entries[i]).dossier_code for i in readable}
        )
        for i in readable:
            if _change(entries[i]).dossier_code not in known:
                outcomes[i] = "unknown_dossier"
        readable = [i for i in readable if i not in outcomes]
    claimed = await claim_message_ids(
        connection, [(entries[i].consumer, entries[i].record_key) for i in readable], now
    )
    winners: list[int] = []
    for i in readable:
        pair = (entries[i].consumer, entries[i].record_key)
        if pair in claimed:
            claimed.discard(pair)  # the same record twice in a page counts once
            winners.append(i)
        else:
            outcomes[i] = "duplicate"

    unreadable = [i for i, entry in enumerate(entries) if entry.change is None]
    filed = await _parked_before(connection, [entries[i] for i in unreadable])
    for i in unreadable:
        mark = (entries[i].record_key, entries[i].hop_row.get("mapping_version"))
        # Listed again until the mapping is fixed: its hop is written the first time only.
        outcomes[i] = "still_parked" if mark in filed else "parked"
        filed.add(mark)

    transitions, correlation, orders = await _apply(
        connection, entries, winners, outcomes, now, linkage
    )

    silent: set[PollOutcome] = {"duplicate", "still_parked"}
    if refuse_unknown:
        silent.add("unknown_dossier")
    hop_rows = [
        {
            **entry.hop_row,
            "outcome": outcomes[i],
            "correlation_id": correlation.get(i, entry.hop_row["correlation_id"]),
            # The partner's date of the record: what later records are ordered against.
            "sent_at": entry.change.changed_at if entry.change else entry.hop_row["sent_at"],
            "done_at": now,
        }
        for i, entry in enumerate(entries)
        if outcomes[i] not in silent
    ]
    if hop_rows:
        await connection.execute(hops.insert(), hop_rows)
    outbox_rows = [event_row(change, transition) for change, transition in transitions]
    outbox_rows += orders
    if outbox_rows:
        await connection.execute(outbox.insert(), outbox_rows)
    # Last but the poller's position: the audit head stays locked from here to the commit.
    await append_audit(connection, audit_records(hop_rows, outbox_rows), now)
    return [outcomes[i] for i in range(len(entries))]


def _change(entry: PolledEntry) -> StatusChange:
    assert entry.change is not None
    return entry.change


async def _apply(
    connection: AsyncConnection,
    entries: Sequence[PolledEntry],
    winners: Sequence[int],
    outcomes: dict[int, PollOutcome],
    now: datetime,
    linkage: LinkageEngine | None,
) -> tuple[list[tuple[StatusChange, StatusTransition]], dict[int, str], list[dict[str, Any]]]:
    """Move the dossiers of the claimed entries forward; fills in their outcomes.

    Returns the transitions to announce, per entry of a known dossier its linkage run (the
    correlation id of its events), and the outbox rows of linkage step orders.
    """
    changes = {i: entries[i].change for i in winners}
    codes = {change.dossier_code for change in changes.values() if change is not None}
    current = await lock_dossiers(connection, codes)
    last_changed = await _last_partner_changes(connection, current.keys())
    ordered = sorted(
        (i for i, change in changes.items() if change is not None),
        key=lambda i: _order_key(changes[i]),
    )
    transitions: list[tuple[StatusChange, StatusTransition]] = []
    moves: list[StatusMove] = []
    correlation: dict[int, str] = {}
    orders: list[dict[str, Any]] = []
    if linkage is not None:
        in_store = [i for i in ordered if _change(entries[i]).dossier_code in current]
        settlement = await linkage.settle(
            connection,
            [
                StepAnswer(
                    _change(entries[i]).dossier_code, entries[i].consumer, _change(entries[i])
                )
                for i in in_store
            ],
            current,
            now,
        )
        for index, announcement in settlement.taken.items():
            i = in_store[index]
            correlation[i] = current[_change(entries[i]).dossier_code].accepted_event_id
            outcomes[i] = "stale" if announcement is None else "applied"
            if announcement is not None:
                transitions.append((announcement.change, announcement.transition))
        ordered = [i for i in ordered if i not in outcomes]
        orders = settlement.outbox_rows
    for i in ordered:
        change = changes[i]
        assert change is not None
        code = change.dossier_code
        state = current.get(code)
        if state is None:
            outcomes[i] = "unknown_dossier"  # evidence only: this store has no such dossier
            continue
        correlation[i] = state.accepted_event_id
        if is_stale(change, state.status, last_changed.get(code)):
            outcomes[i] = "stale"
            continue
        sequence = state.sequence + 1
        transition = StatusTransition(
            code,
            state.receiving_agency,
            state.status,
            change.status,
            sequence,
            state.accepted_event_id,
        )
        transitions.append(
            (change.model_copy(update={"previous_status": state.status}), transition)
        )
        moves.append(
            StatusMove(
                code,
                change.status,
                sequence,
                updated_at=now,
                partner_reference=change.partner_reference,
                # The partner's date is when the dossier finished, not when the bus heard of it.
                finished_at=change.changed_at if change.status in FINISHED_STATUSES else None,
                changed_at=change.changed_at,
            )
        )
        current[code] = replace(state, status=change.status, sequence=sequence)
        last_changed[code] = change.changed_at
        outcomes[i] = "applied"
    await move_dossiers(connection, moves)
    return transitions, correlation, orders


def _order_key(change: StatusChange | None) -> tuple[datetime, int]:
    assert change is not None
    return change.changed_at, _PROGRESS[change.status]


async def _last_partner_changes(
    connection: AsyncConnection, codes: Collection[str]
) -> dict[str, datetime]:
    """Per dossier, the partner's date of the last change a poll or a push applied to it."""
    if not codes:
        return {}
    rows = await connection.execute(
        sa.select(hops.c.dossier_code, sa.func.max(hops.c.sent_at))
        .where(
            hops.c.dossier_code.in_(set(codes)),
            hops.c.kind.in_(_PARTNER_CHANGE_HOPS),
            hops.c.outcome == "applied",
        )
        .group_by(hops.c.dossier_code)
    )
    return {row[0]: row[1] for row in rows if row[1] is not None}


async def _parked_before(
    connection: AsyncConnection, entries: Sequence[PolledEntry]
) -> set[tuple[str, Any]]:
    """Which of these unreadable records already have a parked hop, by key and mapping."""
    if not entries:
        return set()
    rows = await connection.execute(
        sa.select(hops.c.message_id, hops.c.mapping_version).where(
            hops.c.message_id.in_({entry.record_key for entry in entries}),
            hops.c.kind == POLL_HOP,
            hops.c.outcome == "parked",
        )
    )
    return {(row[0], row[1]) for row in rows}


async def _write_position(
    connection: AsyncConnection, connector_id: str, position: PollPosition, now: datetime
) -> None:
    """Upsert the position; a watermark never moves back (a slower replica cannot rewind it)."""
    dialect = connection.dialect.name
    if dialect == "sqlite":
        insert: Any = sqlite.insert(poll_cursors)
    elif dialect == "postgresql":
        insert = postgresql.insert(poll_cursors)
    else:
        raise ValueError(f"unsupported database dialect {dialect!r}: use SQLite or PostgreSQL")
    values = {
        "connector_id": connector_id,
        "cursor": position.cursor,
        "watermark": position.watermark,
        "updated_at": now,
    }
    statement = insert.values(**values).on_conflict_do_update(
        index_elements=[poll_cursors.c.connector_id],
        set_={
            "cursor": insert.excluded.cursor,
            "watermark": insert.excluded.watermark,
            "updated_at": insert.excluded.updated_at,
        },
        where=poll_cursors.c.watermark <= insert.excluded.watermark,
    )
    await connection.execute(statement)
