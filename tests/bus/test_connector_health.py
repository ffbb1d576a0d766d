"""A connector's health word from its recorded activity (bus.connector_health)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bus.connector_health import Health, health_of
from bus.store.connector_health import ConnectorActivity

NOW = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
EARLIER, LATER = NOW - timedelta(minutes=20), NOW - timedelta(minutes=5)


def _activity(
    delivered: int = 0,
    failed: int = 0,
    success: datetime | None = None,
    failure: datetime | None = None,
    parked: int = 0,
) -> ConnectorActivity:
    return ConnectorActivity("civil_status", delivered, failed, failed, success, failure, parked)


@pytest.mark.parametrize(
    ("activity", "health"),
    [
        (_activity(), Health.IDLE),
        (_activity(success=EARLIER, parked=4), Health.IDLE),  # old success, parked ones wait
        (_activity(delivered=3, success=LATER), Health.OK),
        (_activity(delivered=3, failed=1, success=LATER, failure=EARLIER), Health.OK),
        (_activity(delivered=3, failed=1, success=EARLIER, failure=LATER), Health.FAILING),
        (_activity(failed=2, failure=LATER), Health.FAILING),  # never succeeded
        (_activity(failed=2, success=NOW - timedelta(days=2), failure=LATER), Health.FAILING),
        (_activity(delivered=1, failed=1, success=LATER, failure=LATER), Health.OK),  # one batch
    ],
    ids=[
        "nothing",
        "nothing-recent",
        "delivering",
        "recovered",
        "broke",
        "never-worked",
        "broke-after-a-quiet-day",
        "same-instant",
    ],
)
def test_the_newest_attempt_in_the_window_decides(
    activity: ConnectorActivity, health: Health
) -> None:
    """Idle without attempts in the window; else failing when the newest attempt failed."""
    assert health_of(activity) is health
