"""Tests of the CloudEvents envelope."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cloudevents.core.formats.json import JSONFormat
from pydantic import ValidationError

from contracts import (
    DOSSIER_DATASCHEMA,
    EVENT_DOSSIER_STATUS_CHANGED,
    EVENT_DOSSIER_SUBMITTED,
    STATUS_CHANGE_DATASCHEMA,
    Dossier,
    EventEnvelope,
    dataschema_uri,
    sample_birth_dossier_json,
)

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

# Attributes defined by the CloudEvents 1.0 core; every other field is an extension.
_CORE_ATTRIBUTES = {
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "datacontenttype",
    "dataschema",
    "data",
}


def _envelope_fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "id": "01HS8Z6Q6W3V5C2M7KJ0F4T9XA",
        "source": "000.00.10.H12",
        "type": EVENT_DOSSIER_SUBMITTED,
        "subject": "000.00.10.H12-240315-0001",
        "time": "2024-03-15T09:00:05+07:00",
        "dataschema": DOSSIER_DATASCHEMA,
        "correlationid": "run-2024-0001",
        "causationid": None,
        "dossierseq": 1,
        "traceparent": TRACEPARENT,
        "data": sample_birth_dossier_json(),
    }
    fields.update(overrides)
    return fields


def test_envelope_round_trips_through_json() -> None:
    """An envelope dumped to JSON validates back to an equal envelope, payload included."""
    envelope = EventEnvelope.model_validate(_envelope_fields())
    again = EventEnvelope.model_validate_json(envelope.model_dump_json())
    assert again == envelope
    assert Dossier.model_validate(again.data).code == again.subject


def test_envelope_defaults_are_cloudevents_1_0_json() -> None:
    """specversion and datacontenttype default to CloudEvents 1.0 JSON."""
    envelope = EventEnvelope.model_validate(_envelope_fields())
    assert envelope.specversion == "1.0"
    assert envelope.datacontenttype == "application/json"


def test_envelope_is_readable_by_the_cloudevents_sdk() -> None:
    """The official CloudEvents SDK parses our JSON and sees the extensions."""
    envelope = EventEnvelope.model_validate(_envelope_fields(causationid="evt-0"))
    event = JSONFormat().read(None, envelope.model_dump_json())
    attributes = event.get_attributes()
    assert attributes["id"] == envelope.id
    assert attributes["subject"] == "000.00.10.H12-240315-0001"
    assert attributes["dossierseq"] == 1
    assert attributes["traceparent"] == TRACEPARENT


def test_extension_attribute_names_follow_cloudevents_rule() -> None:
    """Every extension attribute name is lowercase letters and digits, at most 20 characters."""
    extensions = set(EventEnvelope.model_fields) - _CORE_ATTRIBUTES
    assert extensions == {"correlationid", "causationid", "dossierseq", "mappingid", "traceparent"}
    for name in extensions:
        assert re.fullmatch(r"[a-z0-9]{1,20}", name), name


@pytest.mark.parametrize(
    "traceparent",
    [
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        "garbage",
    ],
)
def test_bad_traceparent_is_rejected(traceparent: str) -> None:
    """A traceparent that is not W3C version 00 in lowercase hex is refused."""
    with pytest.raises(ValidationError) as caught:
        EventEnvelope.model_validate(_envelope_fields(traceparent=traceparent))
    assert caught.value.errors()[0]["loc"] == ("traceparent",)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("type", "Vn.LienThong.Dossier"),
        ("type", "dossier"),
        ("source", "https://hcc.example.vn"),
        ("subject", "HS-0001"),
        ("dossierseq", 0),
        ("dataschema", "dossier 1.0"),
        ("specversion", "0.3"),
        ("id", ""),
        ("time", "2024-03-15T09:00:05"),
    ],
)
def test_invalid_attribute_is_rejected(field: str, value: object) -> None:
    """Each attribute is validated: event type, agency, dossier code, sequence, URI, version."""
    with pytest.raises(ValidationError) as caught:
        EventEnvelope.model_validate(_envelope_fields(**{field: value}))
    assert caught.value.errors()[0]["loc"] == (field,)


def test_unknown_attribute_is_rejected() -> None:
    """An unknown attribute is refused, so a misspelt extension never travels silently."""
    with pytest.raises(ValidationError, match="correlationId"):
        EventEnvelope.model_validate(_envelope_fields(correlationId="x"))


def test_event_time_is_stored_in_vietnam_time() -> None:
    """A UTC event time is converted to +07:00."""
    envelope = EventEnvelope.model_validate(
        _envelope_fields(time=datetime(2024, 3, 15, 2, 0, 5, tzinfo=UTC))
    )
    assert envelope.time.utcoffset() == timedelta(hours=7)


def test_dataschema_uris() -> None:
    """Data schema URIs are URNs naming the contract and its version."""
    assert dataschema_uri("dossier", "1.0") == "urn:lienthong:contracts:dossier:1.0"
    assert DOSSIER_DATASCHEMA == "urn:lienthong:contracts:dossier:1.0"
    assert STATUS_CHANGE_DATASCHEMA == "urn:lienthong:contracts:status-change:1.0"
    assert EVENT_DOSSIER_STATUS_CHANGED == "vn.lienthong.dossier.status_changed"
