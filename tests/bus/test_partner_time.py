"""Which time dates a partner's synchronous answer: its own, unless absent or too far ahead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bus.connector import DeliveryReceipt
from bus.worker import _partner_time
from contracts import DossierStatus

ANSWERED = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)


def receipt(changed_at: datetime | None) -> DeliveryReceipt:
    return DeliveryReceipt(
        status=DossierStatus.PROCESSED,
        sent_at=ANSWERED - timedelta(seconds=1),
        answered_at=ANSWERED,
        changed_at=changed_at,
    )


def test_the_partners_own_date_is_kept_a_missing_or_far_future_one_is_not() -> None:
    """Its own second-resolution date (even a little ahead: clocks differ) is kept, so its later
    push compares on one clock; none, or a year ahead, gives the bus's time of the answer."""
    own = ANSWERED.replace(microsecond=0) - timedelta(seconds=2)
    assert _partner_time(receipt(own)) == own
    slightly_ahead = ANSWERED + timedelta(minutes=2)
    assert _partner_time(receipt(slightly_ahead)) == slightly_ahead
    assert _partner_time(receipt(None)) == ANSWERED
    assert _partner_time(receipt(ANSWERED + timedelta(days=365))) == ANSWERED
