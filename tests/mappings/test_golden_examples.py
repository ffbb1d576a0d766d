"""Every golden example under mappings/ maps its input to exactly its expected output."""

from __future__ import annotations

import pytest

from bus.mapping import MappingCatalog
from bus.mapping.golden import GoldenCase, discover, run_case

CASES = list(discover(MappingCatalog.load()))


def test_there_are_golden_examples() -> None:
    """The shipped mappings come with golden examples (an empty run would prove nothing)."""
    assert len(CASES) >= 1


@pytest.mark.parametrize("case", CASES, ids=[case.label for case in CASES])
def test_golden_example(case: GoldenCase) -> None:
    """The mapping turns this example's input into its expected output (or expected error)."""
    result = run_case(case)
    assert result.ok, result.detail
