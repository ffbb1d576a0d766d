"""The fault suite's count: from what the partner applied and what the store recorded, how many
dossiers were lost, applied twice or parked (bus/chaos/rig.py ``tally_of``)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable

from bus.chaos.ledger import Ledger
from bus.chaos.rig import PartnerStats, Pushed, Tally, tally_of

CODES = frozenset({"A", "B", "C"})


def _ledger(finished: Iterable[str], **changes: object) -> Ledger:
    """A store where ``finished`` were delivered once, announced once and stand at 9."""
    done = set(finished)
    values: dict[str, object] = {
        "processed": len(done),
        "delivered_hops": Counter(done),
        "status_events": Counter(done),
        "unsent_events": 0,
        "parked": {},
        "finished": done,
    }
    values.update(changes)
    return Ledger(**values)  # type: ignore[arg-type]


def _stats(*applied: str, duplicates: int = 0) -> PartnerStats:
    return PartnerStats(len(applied), duplicates, len(applied) + duplicates, list(applied))


def _tally(
    stats: PartnerStats,
    ledger: Ledger,
    *,
    accepted: frozenset[str] | set[str] = CODES,
    parked: frozenset[str] = frozenset(),
) -> Tally:
    return tally_of(
        len(CODES), Pushed(accepted=set(accepted)), set(parked), stats, ledger, time.monotonic(), ()
    )


def test_every_dossier_applied_once_and_finished_passes() -> None:
    """Three in, three registered once, delivered once, announced once: a pass."""
    tally = _tally(_stats("A", "B", "C", duplicates=2), _ledger(CODES))
    assert (tally.accepted, tally.delivered, tally.lost, tally.applied_twice) == (3, 3, 0, 0)
    assert tally.passed


def test_a_dossier_the_partner_never_registered_is_lost() -> None:
    """Accepted but never registered by the partner, nor parked: lost."""
    tally = _tally(_stats("A", "B"), _ledger({"A", "B"}))
    assert (tally.delivered, tally.lost) == (2, 1)
    assert not tally.passed and "1 lost" in tally.problems


def test_a_registered_dossier_not_at_its_final_status_is_lost() -> None:
    """Registered by the partner but never recorded as done by the bus: lost too."""
    tally = _tally(_stats("A", "B", "C"), _ledger({"A", "B"}, delivered_hops=Counter("AB")))
    assert tally.lost == 1


def test_a_second_registration_at_the_partner_is_applied_twice() -> None:
    """The partner's list naming a dossier twice is a double application."""
    tally = _tally(_stats("A", "B", "C", "B"), _ledger(CODES))
    assert tally.applied_twice == 1 and not tally.passed


def test_a_second_delivered_hop_or_status_event_is_applied_twice() -> None:
    """Two delivered hops of one dossier, or two status events of another, count twice each."""
    ledger = _ledger(CODES, delivered_hops=Counter("AABC"), status_events=Counter("ABBC"))
    assert _tally(_stats("A", "B", "C"), ledger).applied_twice == 2


def test_an_expected_dead_letter_is_parked_not_lost() -> None:
    """A poison dossier kept as a dead letter passes when it was expected, fails when not."""
    ledger = _ledger({"A", "B"}, parked={"C": ["permanent FORM_INVALID: no name"]})
    expected = _tally(_stats("A", "B"), ledger, parked=frozenset("C"))
    assert (expected.lost, expected.parked, expected.expected_parked) == (0, 1, 1)
    assert expected.passed
    unexpected = _tally(_stats("A", "B"), ledger)
    assert unexpected.lost == 0 and not unexpected.passed
    assert "1 parked, 0 expected" in unexpected.problems


def test_unanswered_pushes_strays_and_unsent_events_fail_the_run() -> None:
    """A dossier never answered 202, one registered without a 202, an event never published."""
    tally = _tally(_stats("A", "B", "C"), _ledger(CODES, unsent_events=4), accepted={"A", "B"})
    assert (tally.accepted, tally.strays, tally.unsent_events) == (2, 1, 4)
    assert tally.problems == [
        "1 of 3 never answered 202",
        "1 registered without a 202",
        "4 events never published",
    ]
