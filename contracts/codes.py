"""Validated code types of Vietnamese e-government: agency, dossier, procedure, CCCD, admin unit.

Each error message says what a valid code looks like: codes are validated, never guessed.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Final

from pydantic import AfterValidator, JsonValue, WithJsonSchema
from pydantic_core import PydanticCustomError

__all__ = [
    "AdminUnitCode",
    "AgencyCode",
    "CitizenId",
    "DossierCode",
    "ProcedureCode",
    "agency_of_dossier",
    "dossier_receipt_date",
    "dossier_sequence",
    "is_agency_code",
    "is_citizen_id",
    "is_dossier_code",
    "is_procedure_code",
    "make_dossier_code",
    "mask_citizen_id",
    "procedure_base",
]

# re.ASCII: without it \d also matches Arabic-Indic and other Unicode digits, which no peer sends.
_AGENCY = r"\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}"
AGENCY_CODE_PATTERN: Final = rf"^{_AGENCY}$"
DOSSIER_CODE_PATTERN: Final = rf"^{_AGENCY}-\d{{6}}-\d{{4}}$"
PROCEDURE_CODE_PATTERN: Final = rf"^\d\.\d{{6}}(\.{_AGENCY})?(\.\d{{2}})?$"
CITIZEN_ID_PATTERN: Final = r"^\d{12}$"
ADMIN_UNIT_CODE_PATTERN: Final = r"^\d{2,5}$"

_AGENCY_RE = re.compile(_AGENCY, re.ASCII)
_DOSSIER_RE = re.compile(rf"(?P<agency>{_AGENCY})-(?P<date>\d{{6}})-(?P<seq>\d{{4}})", re.ASCII)
_PROCEDURE_RE = re.compile(
    rf"(?P<base>\d\.\d{{6}})(?:\.(?P<unit>{_AGENCY}))?(?:\.(?P<online>\d{{2}}))?", re.ASCII
)
_CITIZEN_ID_RE = re.compile(r"\d{12}", re.ASCII)
_ADMIN_UNIT_RE = re.compile(r"\d{2,5}", re.ASCII)

_AGENCY_HELP = "agency code must look like 000.00.10.H12 (V1V2V3.Z1Z2.Y1Y2.MX1X2)"
_DOSSIER_HELP = (
    "dossier code must look like 000.00.10.H12-240315-0001 "
    "(<agency code>-YYMMDD-XXXX: receipt date and 4-digit daily sequence)"
)
_PROCEDURE_HELP = (
    "procedure code must look like 1.007073, optionally followed by the issuing unit "
    "(1.011442.000.00.00.H38) and an online-service suffix (1.011442.000.00.00.H38.02)"
)
_CITIZEN_ID_HELP = "citizen identity number (CCCD) must be exactly 12 digits"
_ADMIN_UNIT_HELP = (
    "administrative unit code must be 2 to 5 digits "
    "(statistics-office codes: province 01, district 001, commune 00001)"
)


def _receipt_date(yymmdd: str) -> date | None:
    # Dossier codes exist only since the 2018 circular, so a two-digit year is always 20YY.
    try:
        return date(2000 + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:]))
    except ValueError:
        return None


def is_agency_code(value: object) -> bool:
    """Whether ``value`` is an agency code such as ``000.00.10.H12``."""
    return isinstance(value, str) and _AGENCY_RE.fullmatch(value) is not None


def is_dossier_code(value: object) -> bool:
    """Whether ``value`` is a dossier code whose YYMMDD part is a real calendar date."""
    if not isinstance(value, str):
        return False
    match = _DOSSIER_RE.fullmatch(value)
    return match is not None and _receipt_date(match["date"]) is not None


def is_procedure_code(value: object) -> bool:
    """Whether ``value`` is a procedure code: base, optional issuing unit, optional suffix."""
    return isinstance(value, str) and _PROCEDURE_RE.fullmatch(value) is not None


def is_citizen_id(value: object) -> bool:
    """Whether ``value`` is a CCCD: exactly 12 ASCII digits."""
    return isinstance(value, str) and _CITIZEN_ID_RE.fullmatch(value) is not None


def _check_agency_code(value: str) -> str:
    if not is_agency_code(value):
        raise PydanticCustomError("agency_code", _AGENCY_HELP)
    return value


def _check_dossier_code(value: str) -> str:
    match = _DOSSIER_RE.fullmatch(value)
    if match is None:
        raise PydanticCustomError("dossier_code", _DOSSIER_HELP)
    if _receipt_date(match["date"]) is None:
        raise PydanticCustomError(
            "dossier_code_date",
            "dossier code date part {yymmdd} is not a real calendar date (YYMMDD)",
            {"yymmdd": match["date"]},
        )
    return value


def _check_procedure_code(value: str) -> str:
    if not is_procedure_code(value):
        raise PydanticCustomError("procedure_code", _PROCEDURE_HELP)
    return value


def _check_citizen_id(value: str) -> str:
    if not is_citizen_id(value):
        # The message never repeats the value: a near-miss CCCD is still personal data.
        raise PydanticCustomError("citizen_id", _CITIZEN_ID_HELP)
    return value


def _check_admin_unit_code(value: str) -> str:
    if _ADMIN_UNIT_RE.fullmatch(value) is None:
        raise PydanticCustomError("admin_unit_code", _ADMIN_UNIT_HELP)
    return value


def _string_schema(pattern: str, description: str, example: str | None = None) -> WithJsonSchema:
    # The validators above carry the rules; the schema repeats the shape for non-Python peers.
    schema: dict[str, JsonValue] = {
        "type": "string",
        "pattern": pattern,
        "description": description,
    }
    if example is not None:
        schema["examples"] = [example]
    return WithJsonSchema(schema)


AgencyCode = Annotated[
    str,
    AfterValidator(_check_agency_code),
    _string_schema(
        AGENCY_CODE_PATTERN,
        "Mã định danh cơ quan — agency code V1V2V3.Z1Z2.Y1Y2.MX1X2",
        "000.00.10.H12",
    ),
]
"""Agency code (mã định danh cơ quan), e.g. ``000.00.10.H12``."""

DossierCode = Annotated[
    str,
    AfterValidator(_check_dossier_code),
    _string_schema(
        DOSSIER_CODE_PATTERN,
        "Mã hồ sơ — dossier code <agency code>-YYMMDD-XXXX (Circular 01/2018/TT-VPCP art. 19)",
        "000.00.10.H12-240315-0001",
    ),
]
"""Dossier code (mã hồ sơ), e.g. ``000.00.10.H12-240315-0001``; YYMMDD is the receipt date."""

ProcedureCode = Annotated[
    str,
    AfterValidator(_check_procedure_code),
    _string_schema(
        PROCEDURE_CODE_PATTERN,
        "Mã TTHC — procedure code: base, optional issuing unit, optional online-service suffix",
        "1.011442.000.00.00.H38.02",
    ),
]
"""Procedure code (mã TTHC), e.g. ``1.007073`` or ``1.011442.000.00.00.H38.02``."""

CitizenId = Annotated[
    str,
    AfterValidator(_check_citizen_id),
    _string_schema(
        CITIZEN_ID_PATTERN,
        "Số CCCD — citizen identity number, 12 digits (personal data)",
        "001090012345",
    ),
]
"""Citizen identity number (CCCD), 12 digits; personal data, see :func:`mask_citizen_id`."""

AdminUnitCode = Annotated[
    str,
    AfterValidator(_check_admin_unit_code),
    _string_schema(
        ADMIN_UNIT_CODE_PATTERN,
        "Mã đơn vị hành chính — statistics-office code: province 2, district 3, commune 5 digits",
    ),
]
"""Administrative unit code of the statistics office: 2 to 5 digits."""


def procedure_base(code: str) -> str:
    """The national base of a procedure code: ``1.011442.000.00.00.H38.02`` -> ``1.011442``.

    Raises ValueError when ``code`` is not a procedure code.
    """
    match = _PROCEDURE_RE.fullmatch(code)
    if match is None:
        raise ValueError(_PROCEDURE_HELP)
    return match["base"]


def _parse_dossier_code(code: str) -> tuple[str, date, int]:
    match = _DOSSIER_RE.fullmatch(code)
    received = None if match is None else _receipt_date(match["date"])
    if match is None or received is None:
        raise ValueError(_DOSSIER_HELP)
    return match["agency"], received, int(match["seq"])


def agency_of_dossier(code: str) -> str:
    """The agency part of a dossier code: ``000.00.10.H12-240315-0001`` -> ``000.00.10.H12``.

    Raises ValueError when ``code`` is not a dossier code.
    """
    return _parse_dossier_code(code)[0]


def dossier_receipt_date(code: str) -> date:
    """The receipt date a dossier code carries: ``...-240315-0001`` -> ``date(2024, 3, 15)``.

    Raises ValueError when ``code`` is not a dossier code.
    """
    return _parse_dossier_code(code)[1]


def dossier_sequence(code: str) -> int:
    """The daily sequence number a dossier code carries: ``...-240315-0001`` -> ``1``.

    Raises ValueError when ``code`` is not a dossier code.
    """
    return _parse_dossier_code(code)[2]


def make_dossier_code(agency: str, received_on: date, sequence: int) -> str:
    """Build ``<agency>-YYMMDD-XXXX`` from its parts, validating each.

    ``received_on`` is the local (Asia/Ho_Chi_Minh) receipt date; ``sequence`` is 1..9999.
    """
    if not is_agency_code(agency):
        raise ValueError(_AGENCY_HELP)
    if not 1 <= sequence <= 9999:
        raise ValueError(f"dossier sequence must be 1..9999, got {sequence}")
    if not 2000 <= received_on.year <= 2099:
        raise ValueError(f"dossier receipt year must be 2000..2099, got {received_on.year}")
    return f"{agency}-{received_on:%y%m%d}-{sequence:04d}"


def mask_citizen_id(value: str) -> str:
    """Mask a CCCD for logs, keeping only the last 3 digits: ``*********123``.

    Values of 3 characters or fewer are masked entirely, since they would otherwise leak whole.
    """
    if len(value) <= 3:
        return "*" * len(value)
    return "*" * (len(value) - 3) + value[-3:]


# Runs of 9 to 13 digits: CCCD (12), old CMND (9), phone (10), social-insurance (10) and tax
# (10 or 13) numbers; the digits of a dossier code (6 and 4) and of a timestamp (14) are not,
# nor are digits inside a word (a hash in hex, an id).
_PERSONAL_NUMBER: Final = re.compile(r"(?<![0-9A-Za-z])\d{9,13}(?![0-9A-Za-z])")
# A Vietnamese phone number written with spaces, dots or dashes: 0912 345 678, +84 912.345.678.
_SPACED_PHONE: Final = re.compile(r"(?<![\d+])(?:\+84[ .-]?|0)\d{2,3}(?:[ .-]\d{3,4}){2}(?!\d)")


def mask_personal_numbers(text: str) -> str:
    """``text`` with every identity or phone number masked but its last 3 digits.

    For anything that may reach a log line or an error message: a partner's note, an exception
    text, an echoed request.
    """

    def spaced(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group())
        return mask_citizen_id(digits)

    return _PERSONAL_NUMBER.sub(
        lambda match: mask_citizen_id(match.group()), _SPACED_PHONE.sub(spaced, text)
    )
