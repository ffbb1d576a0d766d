"""Bus events are CloudEvents 1.0 that the official SDK reads, with the bus's extensions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cloudevents.core.bindings import rabbitmq as ce_rabbitmq
from cloudevents.core.formats.json import JSONFormat

from bus import events
from bus.amqp import CLOUDEVENTS_JSON
from bus.errors import InvalidMessage
from contracts import DossierStatus, StatusChange, sample_birth_dossier


def _read(body: bytes):  # type: ignore[no-untyped-def]
    return ce_rabbitmq.from_rabbitmq(
        ce_rabbitmq.RabbitMQMessage(headers={}, content_type=CLOUDEVENTS_JSON, body=body),
        JSONFormat(),
    )


def test_a_submitted_event_is_a_cloudevent_about_the_dossier() -> None:
    """The SDK reads id, source (agency), type, subject (dossier code), time and dataschema."""
    dossier = sample_birth_dossier()
    event = events.dossier_submitted(dossier, event_id="e-1", time=datetime.now(UTC))
    parsed = _read(events.encode(event))
    assert parsed.get_id() == "e-1"
    assert parsed.get_specversion() == "1.0"
    assert parsed.get_source() == dossier.receiving_agency
    assert parsed.get_type() == "vn.lienthong.dossier.submitted"
    assert parsed.get_subject() == dossier.code
    assert parsed.get_dataschema() == "urn:lienthong:contracts:dossier:1.0"
    assert parsed.get_extension("correlationid") == "e-1"
    assert parsed.get_extension("dossierseq") == 1
    assert parsed.get_data()["code"] == dossier.code  # type: ignore[index]


def test_a_status_event_names_its_cause_and_keeps_the_trace() -> None:
    """A status change carries its cause's id, correlation and trace, and the next sequence."""
    dossier = sample_birth_dossier()
    cause = events.dossier_submitted(
        dossier, event_id="e-1", time=datetime.now(UTC), correlation_id="corr-9"
    )
    change = StatusChange(
        dossier_code=dossier.code,
        status=DossierStatus.PROCESSED,
        changed_at=datetime.now(UTC),
        agency="000.00.00.G12",
    )
    parsed = _read(events.encode(events.status_changed(change, cause=cause, sequence=2)))
    assert parsed.get_extension("causationid") == "e-1"
    assert parsed.get_extension("correlationid") == "corr-9"
    assert parsed.get_extension("dossierseq") == 2
    assert parsed.get_source() == "000.00.00.G12"
    assert cause.traceparent is not None
    assert parsed.get_extension("traceparent").split("-")[1] == cause.traceparent.split("-")[1]


def test_a_given_traceparent_is_continued() -> None:
    """An incoming W3C traceparent keeps its trace id; the span id is new."""
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    child = events.child_traceparent(parent)
    assert child.split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
    assert child.split("-")[2] != "b7ad6b7169203331"


@pytest.mark.parametrize("body", [b"not json", b"{}", b'{"specversion": "0.3"}'])
def test_anything_but_a_bus_event_is_an_invalid_message(body: bytes) -> None:
    """A body that is not a bus event is refused with a permanent, named error."""
    with pytest.raises(InvalidMessage):
        events.decode(body)
