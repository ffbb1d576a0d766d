"""Ingest gives a dossier sent without a due date the one its procedure's time implies."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import cast

from bus.calendar import WorkingCalendar
from bus.ingest import IngestService, Submission, build_ingest_request
from bus.runtime import Runtime
from bus.settings import Settings
from contracts import VN_TZ, Dossier, load_procedure_catalogue, sample_birth_dossier


def _service() -> IngestService:
    # Only the settings of a runtime are read before the first commit.
    runtime = cast(Runtime, SimpleNamespace(settings=Settings()))
    return IngestService(runtime, load_procedure_catalogue(), calendar=WorkingCalendar())


def _submission() -> Submission:
    return Submission(received_at=datetime.now(VN_TZ), request_bytes=1000)


def test_a_birth_registration_is_due_the_same_working_day() -> None:
    """1.001193 takes 0 working days: received Friday 15 March 2024 09:00, due that evening."""
    due = _service().derived_due_at(sample_birth_dossier())
    assert due == datetime(2024, 3, 15, 23, 59, 59, tzinfo=VN_TZ)


def test_a_birth_registration_after_1500_is_due_the_next_working_day() -> None:
    """Received Friday 15 March 2024 at 16:00, after the 15:00 cut-off: due Monday 18 March."""
    dossier = sample_birth_dossier(received_at=datetime(2024, 3, 15, 16, tzinfo=VN_TZ))
    due = _service().derived_due_at(dossier)
    assert due == datetime(2024, 3, 18, 23, 59, 59, tzinfo=VN_TZ)


def test_a_due_date_the_sender_gave_stands() -> None:
    """The receiving agency's own due date is kept: the bus derives none."""
    given = datetime(2024, 3, 20, 17, tzinfo=VN_TZ)
    dossier = sample_birth_dossier().model_copy(update={"due_at": given})
    assert _service().derived_due_at(dossier) is None


def test_a_procedure_without_a_processing_time_gets_no_due_date() -> None:
    """1.007073 has no processing time in the catalogue, so its due date stays empty."""
    dossier = sample_birth_dossier().model_copy(update={"procedure_code": "1.007073"})
    assert _service().derived_due_at(dossier) is None


def test_the_derived_due_date_is_carried_but_not_fingerprinted() -> None:
    """The stored document and the event carry due_at; the content hash is of what was sent."""
    dossier = sample_birth_dossier()
    due = datetime(2024, 3, 15, 23, 59, 59, tzinfo=VN_TZ)
    plain = build_ingest_request(dossier, _submission(), events_exchange="t.events")
    dated = build_ingest_request(dossier, _submission(), events_exchange="t.events", due_at=due)
    assert dated.dossier_row["due_at"] == due
    assert dated.dossier_row["document"]["due_at"] == "2024-03-15T23:59:59+07:00"
    assert b"2024-03-15T23:59:59+07:00" in dated.outbox_row["payload"]
    assert dated.content_hash == plain.content_hash
    assert Dossier.model_validate(dated.dossier_row["document"]).due_at == due
