"""Linkage bundle definitions: the shipped ones, and every mistake a definition can make."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from bus.registry import ConnectorRegistry
from contracts import LinkageBundle, load_linkage_bundles, load_procedure_catalogue


def bundle(**changes: Any) -> dict[str, Any]:
    """A valid three-step bundle (one step, then two in parallel), changed by ``changes``."""
    data: dict[str, Any] = {
        "id": "birth",
        "title": "Khai sinh liên thông",
        "procedure": "1.001193",
        "working_days": 3,
        "cutoff_hour": 15,
        "steps": [
            {"id": "first", "title": "A", "connector": "civil_status", "working_days": 0},
            {
                "id": "second",
                "title": "B",
                "connector": "residence",
                "after": ["first"],
                "passes": {"birth_certificate_number": "steps.first.partner_reference"},
                "working_days": 2,
            },
            {
                "id": "third",
                "title": "C",
                "connector": "social_insurance",
                "after": ["first"],
                "working_days": 2,
            },
        ],
    }
    data.update(changes)
    return data


def steps_with(index: int, **changes: Any) -> list[dict[str, Any]]:
    """The valid bundle's steps with step ``index`` changed."""
    steps: list[dict[str, Any]] = bundle()["steps"]
    steps[index] = {**steps[index], **changes}
    return steps


def test_the_birth_bundle_is_civil_status_then_residence_and_health_insurance() -> None:
    shipped = {b.id: b for b in load_linkage_bundles()}
    birth = shipped["birth"]
    assert birth.procedure == "1.001193"
    assert (birth.working_days, birth.working_days_with_verification, birth.cutoff_hour) == (
        3,
        5,
        15,
    )
    assert [s.connector for s in birth.first_steps] == ["civil_status"]
    parallel = birth.next_steps({"birth_registration"})
    assert {s.connector for s in parallel} == {"residence", "social_insurance"}
    for step in parallel:
        assert step.passes == {
            "birth_certificate_number": "steps.birth_registration.partner_reference"
        }
        assert step.working_days == 2
    assert birth.critical_path_days() == 2


def test_the_death_bundle_is_a_sequence_of_three() -> None:
    death = {b.id: b for b in load_linkage_bundles()}["death"]
    assert death.procedure == "1.007073"
    assert death.topological_order() == [
        "death_registration",
        "residence_removal",
        "funeral_allowance",
    ]
    assert death.ancestors("funeral_allowance") == {"death_registration", "residence_removal"}
    assert death.critical_path_days() <= death.working_days


def test_shipped_bundles_name_installed_connectors_and_known_procedures() -> None:
    connectors = set(ConnectorRegistry.discover().ids)
    procedures = load_procedure_catalogue()
    for shipped in load_linkage_bundles():
        assert shipped.procedure in procedures, shipped.id
        assert {s.connector for s in shipped.steps} <= connectors, shipped.id


def test_a_join_waits_for_every_branch() -> None:
    steps = [
        *bundle()["steps"],
        {
            "id": "join",
            "title": "D",
            "connector": "one_stop",
            "after": ["second", "third"],
            "working_days": 1,
        },
    ]
    joined = LinkageBundle.model_validate(bundle(steps=steps))
    assert [s.id for s in joined.next_steps({"first", "second"})] == ["third"]
    assert [s.id for s in joined.next_steps({"first", "second", "third"})] == ["join"]
    assert joined.critical_path_days() == 3


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"steps": steps_with(1, id="first")}, "step ids must be unique; repeated: first"),
        ({"steps": steps_with(1, after=["nowhere"])}, "waits for unknown steps: nowhere"),
        ({"steps": steps_with(0, after=["second"])}, "in a cycle"),
        (
            {"steps": steps_with(2, passes={"cert": "steps.second.partner_reference"})},
            "which does not finish before it",
        ),
        (
            {"steps": steps_with(1, passes={"cert": "partner_reference"})},
            "write 'steps.<step id>",
        ),
        (
            {"steps": steps_with(1, passes={"cert": "steps.first.secret"})},
            "unknown field secret",
        ),
        ({"working_days": 1}, "up to 2 working days in a row, more than the bundle's 1"),
        ({"working_days_with_verification": 2}, "shorter than working_days"),
        ({"procedure": "1.00119"}, "procedure"),
        ({"cutoff_hour": 24}, "cutoff_hour"),
        ({"steps": []}, "steps"),
        ({"steps": steps_with(0, connector="Civil Status")}, "connector"),
        ({"steps": steps_with(0, working_days=-1)}, "working_days"),
        ({"owner": "someone"}, "owner"),
    ],
    ids=[
        "duplicate-step",
        "unknown-after",
        "cycle",
        "passes-from-a-parallel-step",
        "passes-without-steps-prefix",
        "passes-unknown-field",
        "steps-longer-than-bundle",
        "verification-shorter",
        "bad-procedure-code",
        "cutoff-hour-out-of-range",
        "no-steps",
        "bad-connector-id",
        "negative-days",
        "unknown-key",
    ],
)
def test_a_broken_definition_is_refused_saying_why(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        LinkageBundle.model_validate(bundle(**changes))


def test_a_bundle_file_is_named_after_its_id(tmp_path: Path) -> None:
    (tmp_path / "births.yaml").write_text(yaml.safe_dump(bundle()), encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape("births.yaml defines bundle 'birth'")):
        list(load_linkage_bundles(tmp_path))
