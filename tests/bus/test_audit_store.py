"""The audit log in the store, on SQLite and PostgreSQL: appends, ordering, triggers, the CLI.

Tampering tests go around the append-only triggers on purpose, the way an intruder with the
database's superuser would: PostgreSQL's ``session_replication_role = replica`` (a superuser
switch that skips triggers for that session), SQLite by dropping the trigger and putting it
back. That it takes such a step shows the first defence; ``bus audit verify`` catching the
change afterwards is the second.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from bus.audit.chain import GENESIS_HASH
from bus.audit.verify import verify_chain
from bus.cli import app
from bus.ingest import Submission, build_ingest_request
from bus.store.audit import AuditDraft, append_audit
from bus.store.database import create_engine, write_transaction, writer
from bus.store.deadlines import AlertToRaise, raise_alerts
from bus.store.deliveries import DeliveryRecord, StatusTransition, commit_deliveries
from bus.store.ingest import IngestRequest, write_ingest_batch
from bus.store.migrate import upgrade_async
from bus.store.polls import PolledEntry, commit_pushed
from bus.store.schema import audit_head, audit_log, hops, outbox
from contracts import DossierStatus, StatusChange, sample_birth_dossier

runner = CliRunner()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated store, as its writer engine."""
    await upgrade_async(database_url)
    engine = create_engine(database_url)
    yield writer(engine)
    await engine.dispose()


async def bypassing_triggers(engine: AsyncEngine, statement: sa.Executable) -> None:
    """Run ``statement`` on audit_log past its append-only triggers, as an intruder would."""
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Superuser only (the test user is one): triggers do not fire in a replica session.
            await connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
            await connection.execute(statement)
            return
        # SQLite has no such switch: drop the triggers, write, and put them back unchanged.
        triggers = (
            await connection.execute(
                sa.text(
                    "SELECT name, sql FROM sqlite_master "
                    "WHERE type = 'trigger' AND tbl_name = 'audit_log'"
                )
            )
        ).all()
        assert len(triggers) == 2
        for name, _ in triggers:
            await connection.execute(sa.text(f'DROP TRIGGER "{name}"'))
        await connection.execute(statement)
        for _, sql in triggers:
            await connection.execute(sa.text(sql))


def _request(sequence: int) -> IngestRequest:
    submission = Submission(received_at=datetime.now(UTC), request_bytes=1234)
    return build_ingest_request(
        sample_birth_dossier(sequence=sequence), submission, events_exchange="t.events"
    )


def _hop(code: str, message_id: str, kind: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "message_id": message_id,
        "dossier_code": code,
        "correlation_id": "c",
        "kind": kind,
        "sender": "bus",
        "recipient": "civil_status",
        "received_at": now,
        "sent_at": now,
        "answered_at": now,
        "fault_code": None,
        "fault_detail": None,
        "mapping_version": "m@1",
    }


def _status_row(change: StatusChange, transition: StatusTransition) -> dict[str, Any]:
    return {
        "event_id": f"status-{transition.dossier_code}-{transition.sequence}",
        "dossier_code": transition.dossier_code,
        "exchange": "t.events",
        "routing_key": f"dossier.status.{int(transition.status)}",
        "mandatory": False,
        "payload": orjson.dumps({"id": "s", "data": {"status": int(change.status)}}),
        "created_at": datetime.now(UTC),
        "attempts": 0,
    }


async def _records(engine: AsyncEngine) -> list[sa.Row[Any]]:
    async with engine.connect() as connection:
        return list(
            (await connection.execute(sa.select(audit_log).order_by(audit_log.c.seq))).all()
        )


async def _subjects(engine: AsyncEngine, table: sa.Table, column: str) -> list[str]:
    async with engine.connect() as connection:
        return sorted((await connection.execute(sa.select(table.c[column]))).scalars())


async def _write_a_little_of_everything(engine: AsyncEngine) -> str:
    """A dossier accepted, delivered, moved by a push and alerted: each writer of the store."""
    request = _request(1)
    await write_ingest_batch(engine, [request])
    code = request.code
    delivery = DeliveryRecord(
        consumer="civil_status",
        message_id="m-1",
        dossier_code=code,
        hop_row=_hop(code, "m-1", "deliver"),
        new_status=DossierStatus.PROCESSING,
        agency="000.00.00.G12",
    )
    await commit_deliveries(engine, [delivery], lambda _r, c, t: _status_row(c, t))
    change = StatusChange(
        dossier_code=code,
        status=DossierStatus.PROCESSED,
        changed_at=datetime.now(UTC),
        agency="000.00.00.G12",
    )
    pushed = PolledEntry("civil_status", "push-1", _hop(code, "push-1", "receive"), change)
    assert await commit_pushed(engine, [pushed], _status_row) == ["applied"]
    alert_row = {
        **_status_row(change, StatusTransition(code, "x", change.status, change.status, 3)),
        "event_id": "alert-1",
    }
    alert = AlertToRaise(
        code, "dossier", "overdue", date(2024, 3, 15), "alert-1", datetime.now(UTC), 3, alert_row
    )
    assert await raise_alerts(engine, [alert]) == [alert]
    return code


async def test_the_migration_starts_an_empty_chain(engine: AsyncEngine) -> None:
    """After the migration the head is seq 0 with the genesis hash, and the chain verifies."""
    async with engine.connect() as connection:
        head = (await connection.execute(sa.select(audit_head))).all()
    assert [tuple(row) for row in head] == [(1, 0, GENESIS_HASH)]
    result = await verify_chain(engine)
    assert result.intact and result.records == 0


async def test_every_hop_and_event_is_recorded_in_its_transaction(engine: AsyncEngine) -> None:
    """Ingest, delivery, push and alert each leave one record per hop row and per outbox row."""
    code = await _write_a_little_of_everything(engine)
    records = await _records(engine)
    hop_subjects = sorted(r.subject for r in records if r.kind == "hop")
    event_subjects = sorted(r.subject for r in records if r.kind == "event")
    assert hop_subjects == await _subjects(engine, hops, "message_id")
    assert event_subjects == await _subjects(engine, outbox, "event_id")
    assert len(records) == 7 and {r.dossier_code for r in records} == {code}
    assert [r.seq for r in records] == list(range(1, 8))
    deliver = next(r for r in records if r.subject == "m-1")
    # The hop as stored, defaults included (attempt, sizes), times in UTC.
    assert deliver.payload["outcome"] == "delivered" and deliver.payload["attempt"] == 1
    assert deliver.payload["done_at"].endswith("+00:00")
    alert = next(r for r in records if r.subject == "alert-1")
    assert orjson.loads(alert.payload["body"])["data"] == {"status": 9}
    result = await verify_chain(engine)
    assert result.intact and result.records == 7 and result.head_hash == records[-1].hash


async def test_two_stores_appending_at_once_leave_one_gap_free_chain(database_url: str) -> None:
    """Two engines (two processes' worth of connections) writing concurrently: seqs 1..n."""
    await upgrade_async(database_url)
    engines = [writer(create_engine(database_url)), writer(create_engine(database_url))]
    try:
        batches = [
            write_ingest_batch(engines[i % 2], [_request(10 * i + j) for j in range(1, 4)])
            for i in range(12)
        ]
        await asyncio.gather(*batches)
        records = await _records(engines[0])
        assert [r.seq for r in records] == list(range(1, 73))  # 36 dossiers: hop + event each
        result = await verify_chain(engines[0], batch=7)  # several batches
        assert result.intact and result.records == 72
    finally:
        for engine in engines:
            await engine.dispose()


async def test_a_transaction_holding_the_head_makes_the_next_wait(engine: AsyncEngine) -> None:
    """Seqs are given in commit order: an appender waits for the one before it to commit."""
    now = datetime.now(UTC)
    async with engine.begin() as first:
        await append_audit(first, [AuditDraft("hop", None, "first", {})], now)

        async def second() -> None:
            async with write_transaction(engine) as connection:
                await append_audit(connection, [AuditDraft("hop", None, "second", {})], now)

        waiting = asyncio.create_task(second())
        await asyncio.sleep(0.3)
        assert not waiting.done(), "a second appender took a seq before the first committed"
    await asyncio.wait_for(waiting, 10)
    assert [(r.seq, r.subject) for r in await _records(engine)] == [(1, "first"), (2, "second")]
    assert (await verify_chain(engine)).intact


async def test_the_database_refuses_to_change_or_delete_a_record(engine: AsyncEngine) -> None:
    """Without going around the triggers, UPDATE and DELETE of a record fail and change nothing."""
    await write_ingest_batch(engine, [_request(1)])
    before = await _records(engine)
    for statement in (
        sa.update(audit_log).where(audit_log.c.seq == 1).values(subject="forged"),
        sa.delete(audit_log).where(audit_log.c.seq == 1),
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as connection:
                await connection.execute(statement)
    assert await _records(engine) == before


@pytest.mark.postgres
async def test_postgresql_refuses_to_truncate_the_log(postgres_url: str) -> None:
    """TRUNCATE, which row triggers do not see, is refused by a statement trigger."""
    await upgrade_async(postgres_url)
    engine = create_engine(postgres_url)
    try:
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as connection:
                await connection.execute(sa.text("TRUNCATE audit_log"))
    finally:
        await engine.dispose()


def _cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["audit", *args])
    return result.exit_code, result.output


def problem_fields(output: str) -> dict[str, str]:
    """The fields of the problem `bus audit` printed (seq, record id, dossier, problem, ...)."""
    found = (
        re.match(r"^(seq|record id|dossier|problem|detail)\s{2,}(.+?)\s*$", line)
        for line in output.splitlines()
    )
    return {match[1]: match[2] for match in found if match}


async def _verify(database_url: str) -> tuple[int, str]:
    # In a thread: the command runs its own event loop.
    return await asyncio.to_thread(_cli, "verify", "--database-url", database_url)


async def test_verify_names_the_record_whose_payload_was_altered(
    engine: AsyncEngine, database_url: str
) -> None:
    """An altered payload makes `bus audit verify` exit 1 naming exactly that record."""
    code = await _write_a_little_of_everything(engine)
    code_ok, output = await _verify(database_url)
    assert code_ok == 0, output
    assert "audit chain intact" in output and "7 records" in output
    target = (await _records(engine))[3]
    altered = {**target.payload, "outcome": "forged"}
    await bypassing_triggers(
        engine, sa.update(audit_log).where(audit_log.c.id == target.id).values(payload=altered)
    )
    exit_code, output = await _verify(database_url)
    assert exit_code == 1, output
    assert "audit chain broken" in output and "after 3 intact records" in output
    assert problem_fields(output) == {
        "seq": str(target.seq),
        "record id": str(target.id),
        "dossier": code,
        "problem": "content changed",
        "detail": "its content no longer matches the digest sealed with it",
    }


async def test_verify_names_a_deleted_record_as_a_gap(
    engine: AsyncEngine, database_url: str
) -> None:
    """A record deleted from the middle is reported as a gap at the record after it."""
    await write_ingest_batch(engine, [_request(i) for i in range(1, 4)])
    await bypassing_triggers(engine, sa.delete(audit_log).where(audit_log.c.seq == 3))
    result = await verify_chain(engine)
    assert result.problem is not None
    assert (result.problem.kind, result.problem.seq) == ("gap", 4)
    exit_code, output = await _verify(database_url)
    assert exit_code == 1, output
    named = problem_fields(output)
    assert (named["seq"], named["problem"]) == ("4", "gap")
    assert "(seq 3) are missing" in named["detail"]


async def test_verify_sees_records_deleted_from_the_end(engine: AsyncEngine) -> None:
    """Deleting the newest records leaves the head naming a seq that is gone."""
    await write_ingest_batch(engine, [_request(i) for i in range(1, 3)])
    await bypassing_triggers(engine, sa.delete(audit_log).where(audit_log.c.seq >= 3))
    result = await verify_chain(engine)
    assert result.problem is not None and result.problem.kind == "head mismatch"
    assert "seq 3 to 4" in result.problem.detail


async def test_verify_says_what_to_do_when_it_cannot_read_the_store(tmp_path: Path) -> None:
    """No store, an unmigrated one, an unreachable server: exit 2 with the cause and the fix."""
    missing = f"sqlite+aiosqlite:///{tmp_path / 'nowhere.sqlite3'}"
    exit_code, output = await _verify(missing)
    assert exit_code == 2 and "there is no SQLite store" in output, output
    assert not (tmp_path / "nowhere.sqlite3").exists()

    empty = tmp_path / "empty.sqlite3"
    empty.touch()
    exit_code, output = await _verify(f"sqlite+aiosqlite:///{empty}")
    assert exit_code == 2 and "run `bus migrate`" in output, output

    exit_code, output = await _verify("postgresql+asyncpg://bus:secret@127.0.0.1:1/bus")
    assert exit_code == 2 and "cannot read the store" in output, output
    assert "secret" not in output and "BUS_DATABASE_URL" in output


async def test_export_writes_a_file_that_checks_and_refuses_what_it_cannot_prove(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    """The CLI export round-trips through check-export; bounds, unknown dossiers and a broken
    chain are refused, each with its exit code."""
    code = await _write_a_little_of_everything(engine)
    await write_ingest_batch(engine, [_request(2)])  # records after the dossier's: in its proof
    out = tmp_path / "evidence.json"

    def cli(*args: str) -> tuple[int, str]:
        return _cli("export", *args, "--out", str(out), "--database-url", database_url)

    exit_code, output = await asyncio.to_thread(cli, code)
    assert exit_code == 0, output
    assert "7 records" in output and "proof of 9 links to head seq 9" in output
    exit_code, output = await asyncio.to_thread(_cli, "check-export", str(out))
    assert exit_code == 0 and "evidence holds" in output, output

    assert (await asyncio.to_thread(cli, code))[0] == 2  # the file exists: --force replaces it
    assert (await asyncio.to_thread(cli, code, "--force", "--max-links", "8"))[0] == 2
    assert (await asyncio.to_thread(cli, "000.00.10.H12-240315-9999", "--force"))[0] == 2

    await bypassing_triggers(
        engine, sa.update(audit_log).where(audit_log.c.seq == 2).values(subject="forged")
    )
    exit_code, output = await asyncio.to_thread(cli, code, "--force")
    assert exit_code == 1 and "audit chain is broken" in output and "seq 2" in output, output
    exit_code, output = await asyncio.to_thread(_cli, "check-export", str(out))
    assert exit_code == 0, "a refused export leaves the earlier file as it was"
