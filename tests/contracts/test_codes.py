"""Tests of the validated code types and their helpers."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from contracts import (
    AdminUnitCode,
    AgencyCode,
    CitizenId,
    DossierCode,
    ProcedureCode,
    agency_of_dossier,
    dossier_receipt_date,
    dossier_sequence,
    is_agency_code,
    is_citizen_id,
    is_dossier_code,
    is_procedure_code,
    make_dossier_code,
    mask_citizen_id,
    procedure_base,
)

AGENCY = TypeAdapter(AgencyCode)
DOSSIER = TypeAdapter(DossierCode)
PROCEDURE = TypeAdapter(ProcedureCode)
CITIZEN = TypeAdapter(CitizenId)
ADMIN_UNIT = TypeAdapter(AdminUnitCode)


def _error_message(adapter: TypeAdapter[Any], value: object) -> str:
    with pytest.raises(ValidationError) as caught:
        adapter.validate_python(value)
    return caught.value.errors()[0]["msg"]


@pytest.mark.parametrize("code", ["000.00.10.H12", "000.00.00.H30", "123.45.67.G09"])
def test_agency_code_accepts_valid_codes(code: str) -> None:
    """Agency codes of the form V1V2V3.Z1Z2.Y1Y2.MX1X2 validate unchanged."""
    assert AGENCY.validate_python(code) == code
    assert is_agency_code(code)


@pytest.mark.parametrize(
    "code",
    [
        "000.00.10.h12",  # the letter must be upper case
        "000.00.10.H1",
        "00.00.10.H12",
        "000-00-10-H12",
        "000.00.10.H12 ",
        "000.00.10.H12\n",
        "٠٠٠.00.10.H12",  # Arabic-Indic digits match \d in Unicode regexes
        "",
    ],
)
def test_agency_code_rejects_malformed_codes(code: str) -> None:
    """A malformed agency code fails with a message showing the expected shape."""
    assert "000.00.10.H12 (V1V2V3.Z1Z2.Y1Y2.MX1X2)" in _error_message(AGENCY, code)
    assert not is_agency_code(code)


def test_agency_code_rejects_non_strings() -> None:
    """A number is not coerced into an agency code."""
    with pytest.raises(ValidationError):
        AGENCY.validate_python(12)


@pytest.mark.parametrize(
    "code", ["000.00.10.H12-240315-0001", "000.00.00.H30-240229-9999", "000.00.10.H12-231231-0000"]
)
def test_dossier_code_accepts_valid_codes(code: str) -> None:
    """Dossier codes with a real calendar date validate, leap days included."""
    assert DOSSIER.validate_python(code) == code
    assert is_dossier_code(code)


@pytest.mark.parametrize(
    "code", ["000.00.10.H12-241332-0001", "000.00.10.H12-230229-0001", "000.00.10.H12-240400-0001"]
)
def test_dossier_code_rejects_impossible_dates(code: str) -> None:
    """A dossier code whose YYMMDD is not a calendar date fails, naming the bad part."""
    message = _error_message(DOSSIER, code)
    assert code.split("-")[1] in message
    assert "not a real calendar date" in message
    assert not is_dossier_code(code)


@pytest.mark.parametrize(
    "code",
    [
        "000.00.10.H12-240315-001",
        "000.00.10.H12-20240315-0001",
        "000.00.10.H12240315-0001",
        "000.00.10.X1-240315-0001",
        "240315-0001",
    ],
)
def test_dossier_code_rejects_malformed_codes(code: str) -> None:
    """A malformed dossier code fails with a message showing the expected shape."""
    assert "000.00.10.H12-240315-0001" in _error_message(DOSSIER, code)
    assert not is_dossier_code(code)


def test_dossier_code_parts_are_extracted() -> None:
    """The agency, receipt date and sequence are read back out of a dossier code."""
    code = "000.00.10.H12-240315-0042"
    assert agency_of_dossier(code) == "000.00.10.H12"
    assert dossier_receipt_date(code) == date(2024, 3, 15)
    assert dossier_sequence(code) == 42


def test_dossier_code_helpers_reject_invalid_codes() -> None:
    """The dossier-code helpers raise ValueError rather than return a part of garbage."""
    with pytest.raises(ValueError, match="dossier code"):
        agency_of_dossier("not-a-code")
    with pytest.raises(ValueError, match="dossier code"):
        dossier_receipt_date("000.00.10.H12-241332-0001")


def test_make_dossier_code_builds_a_valid_code() -> None:
    """make_dossier_code pads the sequence and formats the date as YYMMDD."""
    code = make_dossier_code("000.00.10.H12", date(2024, 3, 5), 7)
    assert code == "000.00.10.H12-240305-0007"
    assert is_dossier_code(code)


@pytest.mark.parametrize(
    ("agency", "sequence", "complaint"),
    [
        ("000.00.10.H12", 0, "sequence must be 1..9999"),
        ("000.00.10.H12", 10_000, "sequence must be 1..9999"),
        ("H12", 1, "agency code must look like"),
    ],
)
def test_make_dossier_code_rejects_bad_parts(agency: str, sequence: int, complaint: str) -> None:
    """make_dossier_code refuses a bad agency or a sequence outside 1..9999."""
    with pytest.raises(ValueError, match=complaint):
        make_dossier_code(agency, date(2024, 3, 15), sequence)


@pytest.mark.parametrize(
    ("code", "base"),
    [
        ("1.007073", "1.007073"),
        ("1.011442.000.00.00.H38", "1.011442"),
        ("1.011442.000.00.00.H38.02", "1.011442"),
        ("2.001263.02", "2.001263"),
    ],
)
def test_procedure_code_accepts_valid_codes(code: str, base: str) -> None:
    """Procedure codes validate with or without issuing unit and online suffix."""
    assert PROCEDURE.validate_python(code) == code
    assert is_procedure_code(code)
    assert procedure_base(code) == base


@pytest.mark.parametrize(
    "code",
    ["1.00707", "1.0070733", "1007073", "1.007073.000.00.00.H3", "1.007073.2", "1.007073.000.00"],
)
def test_procedure_code_rejects_malformed_codes(code: str) -> None:
    """A malformed procedure code fails with a message showing the accepted shapes."""
    assert "1.011442.000.00.00.H38.02" in _error_message(PROCEDURE, code)
    assert not is_procedure_code(code)


def test_procedure_base_rejects_invalid_codes() -> None:
    """procedure_base raises ValueError for a string that is not a procedure code."""
    with pytest.raises(ValueError, match="procedure code"):
        procedure_base("khai-sinh")


def test_citizen_id_accepts_twelve_digits() -> None:
    """A 12-digit CCCD validates unchanged."""
    assert CITIZEN.validate_python("001090012345") == "001090012345"
    assert is_citizen_id("001090012345")


@pytest.mark.parametrize(
    "value", ["00109001234", "0010900123456", "00109001234A", "001 090 012 345", "０01090012345"]
)
def test_citizen_id_rejects_other_shapes(value: str) -> None:
    """11 or 13 digits, letters, spaces and full-width digits are not a CCCD."""
    message = _error_message(CITIZEN, value)
    assert message == "citizen identity number (CCCD) must be exactly 12 digits"
    assert not is_citizen_id(value)


def test_citizen_id_error_does_not_echo_the_value() -> None:
    """The error text of a near-miss CCCD does not repeat the personal number."""
    assert "0010900123456" not in _error_message(CITIZEN, "0010900123456")


@pytest.mark.parametrize(
    ("value", "masked"),
    [("001090012345", "*********345"), ("123", "***"), ("", ""), ("12345", "**345")],
)
def test_mask_citizen_id_keeps_only_last_three(value: str, masked: str) -> None:
    """Masking keeps the last 3 digits, and hides a value of 3 characters or fewer entirely."""
    assert mask_citizen_id(value) == masked


@pytest.mark.parametrize("code", ["01", "001", "0001", "00001"])
def test_admin_unit_code_accepts_two_to_five_digits(code: str) -> None:
    """Statistics-office codes of 2 to 5 digits validate."""
    assert ADMIN_UNIT.validate_python(code) == code


@pytest.mark.parametrize("code", ["1", "000001", "0A", "HN"])
def test_admin_unit_code_rejects_other_shapes(code: str) -> None:
    """Administrative unit codes outside 2 to 5 digits fail with a message saying so."""
    assert "2 to 5 digits" in _error_message(ADMIN_UNIT, code)


@pytest.mark.parametrize(
    "predicate", [is_agency_code, is_dossier_code, is_procedure_code, is_citizen_id]
)
def test_predicates_are_false_for_non_strings(predicate: Any) -> None:
    """The is_* predicates answer False, not raise, for values that are not strings."""
    assert predicate(None) is False
    assert predicate(1007073) is False
