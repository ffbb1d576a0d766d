"""The audit log of a whole bus: real dossiers through the API, broker, worker and partner.

Then ``bus audit verify`` finds the chain intact, a dossier's evidence export (API and CLI)
checks offline, and a record altered behind the database's back (the triggers bypassed, see
tests/bus/test_audit_store.py) is named by ``verify`` and stops the export. On SQLite and
PostgreSQL.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from bus.audit.evidence import EvidenceExport, check_evidence
from bus.cli import app
from bus.settings import Settings
from bus.store.database import create_engine, writer
from bus.store.schema import audit_log, hops, outbox
from bus.worker import ConnectorWorker
from contracts import sample_birth_dossier_json
from tests.bus.test_audit_store import bypassing_triggers, problem_fields
from tests.integration.conftest import LinkagePartners, Simulator, partner_settings
from tests.integration.helpers import wait_for

pytestmark = pytest.mark.broker

runner = CliRunner()


@pytest.fixture
def settings(
    namespace: str,
    database_url: str,
    simulator: Simulator,
    partners: LinkagePartners,
    broker_cleanup: list[str],
) -> Settings:
    """The integration bus, on SQLite and on PostgreSQL."""
    return partner_settings(namespace, database_url, simulator, partners)


async def _audit(*args: str) -> tuple[int, str]:
    """``bus audit ARGS`` in a thread (the command runs its own event loop)."""

    def invoke() -> tuple[int, str]:
        result = runner.invoke(app, ["audit", *args])
        return result.exit_code, result.output

    return await asyncio.to_thread(invoke)


async def _push_and_finish(client: httpx.AsyncClient, sequences: range) -> list[str]:
    """Dossiers accepted, registered by civil status, and every event confirmed."""
    codes = []
    for sequence in sequences:
        answer = await client.post("/v1/dossiers", json=sample_birth_dossier_json(sequence))
        assert answer.status_code == 202, answer.text
        codes.append(answer.json()["dossier_code"])

    async def finished() -> bool:
        for code in codes:
            view = (await client.get(f"/v1/dossiers/{code}")).json()
            if view["state"]["status"] != 9 or not all(e["sent_at"] for e in view["events"]):
                return False
        return True

    await wait_for(finished, timeout=30)
    return codes


async def _count(settings: Settings, table: sa.Table) -> int:
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            query = sa.select(sa.func.count()).select_from(table)
            return int((await connection.execute(query)).scalar_one())
    finally:
        await engine.dispose()


async def test_a_bus_at_work_leaves_a_chain_that_verifies_and_exports(
    client: httpx.AsyncClient,
    workers: list[ConnectorWorker],
    settings: Settings,
    tmp_path: Path,
) -> None:
    """Every hop and event of three dossiers is in the chain; one dossier's evidence checks."""
    codes = await _push_and_finish(client, range(61, 64))
    exit_code, output = await _audit("verify", "--database-url", settings.database_url)
    assert exit_code == 0, output
    records = await _count(settings, audit_log)
    assert records == await _count(settings, hops) + await _count(settings, outbox)
    assert f"{records} records" in output

    answer = await client.get(f"/v1/dossiers/{codes[1]}/evidence")
    assert answer.status_code == 200, answer.text
    assert "attachment" in answer.headers["content-disposition"]
    export = EvidenceExport.model_validate_json(answer.content)
    assert check_evidence(export) is None
    assert export.document == (await client.get(f"/v1/dossiers/{codes[1]}")).json()["dossier"]
    hop_kinds = [r.payload["kind"] for r in export.records if r.kind == "hop"]
    assert hop_kinds == ["ingest", "deliver"]
    types = [e.body["type"] for e in export.events]
    assert types == ["vn.lienthong.dossier.submitted", "vn.lienthong.dossier.status_changed"]
    assert export.signatures.items == []  # no connector of this bus signs its calls
    links = export.chain.links
    assert links[0].seq == export.records[0].seq and links[-1].seq == export.chain.head.seq
    assert export.chain.head.hash in output  # the head verify printed
    # Other dossiers' records in the span appear by digest only.
    assert codes[2] not in answer.text and len(links) > len(export.records)

    out = tmp_path / "evidence.json"
    exit_code, output = await _audit(
        "export", codes[0], "--out", str(out), "--database-url", settings.database_url
    )
    assert exit_code == 0, output
    exit_code, output = await _audit("check-export", str(out))
    assert exit_code == 0 and "evidence holds" in output, output

    data: dict[str, Any] = orjson.loads(out.read_bytes())
    delivered = next(r for r in data["records"] if r["payload"].get("kind") == "deliver")
    delivered["payload"]["outcome"] = "parked"  # rewrite history in the file
    out.write_bytes(orjson.dumps(data))
    exit_code, output = await _audit("check-export", str(out))
    assert exit_code == 1, output
    named = problem_fields(output)
    assert (named["seq"], named["problem"]) == (str(delivered["seq"]), "content changed")


async def test_a_record_altered_in_the_store_is_named_and_stops_its_export(
    client: httpx.AsyncClient, workers: list[ConnectorWorker], settings: Settings
) -> None:
    """Changing one stored record (past the triggers) fails verify at it and its export."""
    [code, _] = await _push_and_finish(client, range(71, 73))
    engine = writer(create_engine(settings.database_url))
    try:
        async with engine.connect() as connection:
            target = (
                await connection.execute(
                    sa.select(audit_log.c.id, audit_log.c.seq, audit_log.c.payload).where(
                        audit_log.c.dossier_code == code, audit_log.c.kind == "hop"
                    )
                )
            ).first()
        assert target is not None
        forged = {**target.payload, "sender": "someone else"}
        await bypassing_triggers(
            engine, sa.update(audit_log).where(audit_log.c.id == target.id).values(payload=forged)
        )
    finally:
        await engine.dispose()

    exit_code, output = await _audit("verify", "--database-url", settings.database_url)
    assert exit_code == 1, output
    named = problem_fields(output)
    assert (named["seq"], named["record id"]) == (str(target.seq), str(target.id))
    assert (named["dossier"], named["problem"]) == (code, "content changed")

    answer = await client.get(f"/v1/dossiers/{code}/evidence")
    assert answer.status_code == 500, answer.text
    assert answer.json()["type"] == "urn:lienthong:problem:audit-chain-broken"
    assert f"record seq {target.seq}" in answer.json()["detail"]


async def test_evidence_requests_that_cannot_be_answered(
    client: httpx.AsyncClient, workers: list[ConnectorWorker]
) -> None:
    """A malformed code is 422, an unknown dossier 404, a proof over the bound 422."""
    [code, _] = await _push_and_finish(client, range(81, 83))
    malformed = await client.get("/v1/dossiers/not-a-code/evidence")
    assert malformed.status_code == 422
    assert malformed.headers["content-type"] == "application/problem+json"
    unknown = await client.get("/v1/dossiers/000.00.10.H12-240315-9999/evidence")
    assert unknown.status_code == 404 and unknown.json()["title"] == "Not found"
    too_long = await client.get(f"/v1/dossiers/{code}/evidence", params={"max_links": 2})
    assert too_long.status_code == 422, too_long.text
    assert too_long.json()["errors"][0]["field"] == "max_links"
