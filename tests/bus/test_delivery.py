"""The connector SDK's delivery: a dossier or a status change, never both, never neither."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bus import events
from bus.connector import Delivery
from bus.errors import InvalidMessage
from contracts import DossierStatus, StatusChange, sample_birth_dossier


def _submitted() -> Delivery:
    dossier = sample_birth_dossier()
    event = events.dossier_submitted(
        dossier, event_id=events.new_event_id(), time=datetime.now(UTC)
    )
    return Delivery(event.id, event, dossier=dossier)


def _status() -> Delivery:
    change = StatusChange(
        dossier_code=sample_birth_dossier().code,
        status=DossierStatus.PROCESSING,
        changed_at=datetime.now(UTC),
        agency="000.00.00.G12",
    )
    event = events.status_changed(change, sequence=2, correlation_id="run")
    return Delivery(event.id, event, change=change)


def test_a_submitted_dossier_is_handed_as_a_dossier() -> None:
    delivery = _submitted()
    assert delivery.require_dossier() is delivery.dossier
    with pytest.raises(InvalidMessage, match="receives status changes, not"):
        delivery.require_change()


def test_a_status_event_is_handed_as_a_change() -> None:
    delivery = _status()
    assert delivery.require_change() is delivery.change
    with pytest.raises(InvalidMessage, match="check its `subscribes`") as caught:
        delivery.require_dossier()
    assert not caught.value.transient  # a routing mistake is parked, never retried


def test_a_delivery_carries_exactly_one_payload() -> None:
    submitted, status = _submitted(), _status()
    with pytest.raises(ValueError, match="either"):
        Delivery(submitted.event.id, submitted.event)
    with pytest.raises(ValueError, match="either"):
        Delivery(
            submitted.event.id, submitted.event, dossier=submitted.dossier, change=status.change
        )
