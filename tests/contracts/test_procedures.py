"""Tests of the procedure catalogue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from contracts import load_procedure_catalogue


def test_shipped_catalogue_has_the_bus_procedures() -> None:
    """The shipped catalogue knows birth registration and the death linkage procedure."""
    catalogue = load_procedure_catalogue()
    birth = catalogue.get("1.001193")
    assert birth is not None
    assert birth.name_vi == "Đăng ký khai sinh"
    assert birth.field_name == "Hộ tịch"
    assert "1.007073" in catalogue


def test_full_code_falls_back_to_base_code() -> None:
    """A code with issuing unit and online suffix finds its catalogued base procedure."""
    catalogue = load_procedure_catalogue()
    found = catalogue.get("1.001193.000.00.00.H12.02")
    assert found is not None
    assert found.code == "1.001193"
    assert "1.007073.02" in catalogue


def test_exact_entry_wins_over_base(tmp_path: Path) -> None:
    """When a full code is catalogued itself, it is preferred over its base."""
    path = tmp_path / "procedures.json"
    entries = [
        {"code": "1.011442", "name_vi": "Cơ sở", "name_en": "Base", "field_name": "Thử"},
        {"code": "1.011442.02", "name_vi": "Trực tuyến", "name_en": "Online", "field_name": "Thử"},
    ]
    path.write_text(json.dumps({"procedures": entries}), encoding="utf-8")
    catalogue = load_procedure_catalogue(path)
    online = catalogue.get("1.011442.02")
    assert online is not None
    assert online.name_en == "Online"
    base = catalogue.get("1.011442.000.00.00.H38")
    assert base is not None
    assert base.name_en == "Base"


@pytest.mark.parametrize("code", ["1.999999", "khai-sinh", "", "1.00119"])
def test_unknown_or_malformed_codes_are_absent(code: str) -> None:
    """Unknown and malformed codes are simply not in the catalogue."""
    catalogue = load_procedure_catalogue()
    assert catalogue.get(code) is None
    assert code not in catalogue


def test_non_string_is_not_contained() -> None:
    """Membership of a non-string is False rather than an error."""
    assert 1.001193 not in load_procedure_catalogue()


def test_duplicate_codes_are_refused(tmp_path: Path) -> None:
    """A catalogue listing one code twice fails to load."""
    entry = {"code": "1.001193", "name_vi": "A", "name_en": "A", "field_name": "Hộ tịch"}
    path = tmp_path / "procedures.json"
    path.write_text(json.dumps({"procedures": [entry, entry]}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"1\.001193 is listed twice"):
        load_procedure_catalogue(path)


def test_malformed_code_in_file_is_refused(tmp_path: Path) -> None:
    """A catalogue entry with an invalid procedure code fails to load."""
    entry = {"code": "1.1193", "name_vi": "A", "name_en": "A", "field_name": "Hộ tịch"}
    path = tmp_path / "procedures.json"
    path.write_text(json.dumps({"procedures": [entry]}), encoding="utf-8")
    with pytest.raises(ValidationError, match="procedure code"):
        load_procedure_catalogue(path)


def test_shipped_processing_times() -> None:
    """Birth registration is same-day with a 15:00 cut-off; the death linkage has no time yet."""
    catalogue = load_procedure_catalogue()
    birth = catalogue.get("1.001193")
    death = catalogue.get("1.007073")
    assert birth is not None and (birth.working_days, birth.cutoff_hour) == (0, 15)
    assert death is not None and (death.working_days, death.cutoff_hour) == (None, None)


@pytest.mark.parametrize(
    ("field", "value"),
    [("working_days", -1), ("cutoff_hour", 24), ("cutoff_hour", -1)],
)
def test_impossible_processing_times_are_refused(tmp_path: Path, field: str, value: int) -> None:
    """A negative processing time or a cut-off hour outside 0-23 fails to load."""
    entry = {"code": "1.001193", "name_vi": "A", "name_en": "A", "field_name": "Hộ tịch"}
    path = tmp_path / "procedures.json"
    path.write_text(json.dumps({"procedures": [{**entry, field: value}]}), encoding="utf-8")
    with pytest.raises(ValidationError, match=field):
        load_procedure_catalogue(path)
