"""Ingest gives a dossier sent without a due date the one its bundle or procedure implies."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import cast

from bus.calendar import WorkingCalendar
from bus.ingest import IngestService, Submission, build_ingest_request
from bus.linkage.book import LinkageBook
from bus.linkage.engine import LinkageEngine
from bus.runtime import Runtime
from bus.settings import Settings
from contracts import VN_TZ, Dossier, load_procedure_catalogue, sample_birth_dossier


def _service(*, bundles: list[str] | None = None) -> IngestService:
    """An ingest service; ``bundles`` the linkage bundles that start (default: all)."""
    calendar = WorkingCalendar()
    linkage = LinkageEngine(LinkageBook.load(calendar, enabled=bundles), exchange="t.events")
    # Only the settings and the linkage engine of a runtime are read before the first commit.
    runtime = cast(Runtime, SimpleNamespace(settings=Settings(), linkage=linkage))
    return IngestService(runtime, load_procedure_catalogue(), calendar=calendar)


def _submission() -> Submission:
    return Submission(received_at=datetime.now(VN_TZ), request_bytes=1000)


def test_a_birth_registration_alone_is_due_the_same_working_day() -> None:
    """Birth bundle off: 1.001193 takes 0 working days: received Friday 15 March 2024 09:00,
    due that evening."""
    due = _service(bundles=[]).derived_due_at(sample_birth_dossier())
    assert due == datetime(2024, 3, 15, 23, 59, 59, tzinfo=VN_TZ)


def test_a_birth_registration_alone_after_1500_is_due_the_next_working_day() -> None:
    """Received Friday 15 March 2024 at 16:00, after the 15:00 cut-off: due Monday 18 March."""
    dossier = sample_birth_dossier(received_at=datetime(2024, 3, 15, 16, tzinfo=VN_TZ))
    due = _service(bundles=[]).derived_due_at(dossier)
    assert due == datetime(2024, 3, 18, 23, 59, 59, tzinfo=VN_TZ)


def test_a_birth_linkage_is_due_in_the_bundles_three_working_days() -> None:
    """The birth bundle takes 3 working days: received Friday 15 March 2024 09:00, due
    Wednesday 20 March; at 16:00 it counts from Monday 18 and is due Thursday 21."""
    service = _service()
    assert service.derived_due_at(sample_birth_dossier()) == datetime(
        2024, 3, 20, 23, 59, 59, tzinfo=VN_TZ
    )
    late = sample_birth_dossier(received_at=datetime(2024, 3, 15, 16, tzinfo=VN_TZ))
    assert service.derived_due_at(late) == datetime(2024, 3, 21, 23, 59, 59, tzinfo=VN_TZ)


def test_a_death_linkage_is_due_in_the_bundles_seven_working_days() -> None:
    """The death bundle takes 7 working days: from Friday 15 March 2024, Tuesday 26 March."""
    dossier = sample_birth_dossier().model_copy(update={"procedure_code": "1.007073"})
    assert _service().derived_due_at(dossier) == datetime(2024, 3, 26, 23, 59, 59, tzinfo=VN_TZ)


def test_a_due_date_the_sender_gave_stands() -> None:
    """The receiving agency's own due date is kept: the bus derives none."""
    given = datetime(2024, 3, 20, 17, tzinfo=VN_TZ)
    dossier = sample_birth_dossier().model_copy(update={"due_at": given})
    assert _service().derived_due_at(dossier) is None


def test_a_procedure_without_a_processing_time_gets_no_due_date() -> None:
    """Death bundle off: 1.007073 has no processing time in the catalogue, so no due date."""
    dossier = sample_birth_dossier().model_copy(update={"procedure_code": "1.007073"})
    assert _service(bundles=[]).derived_due_at(dossier) is None


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
