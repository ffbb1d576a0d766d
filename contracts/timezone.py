"""Vietnam's time zone and the ``VnDateTime`` type every datetime of the contracts uses.

Naive datetimes and bare numbers are rejected: a wrong hour on a due date is a missed deadline.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BeforeValidator
from pydantic_core import PydanticCustomError

__all__ = ["VN_TZ", "VnDateTime", "to_vn"]

VN_TZ: Final = ZoneInfo("Asia/Ho_Chi_Minh")
"""Asia/Ho_Chi_Minh (UTC+07:00, no daylight saving): the local time of every agency."""

_EXAMPLE = "2024-03-15T09:00:00+07:00"


def _reject_numbers(value: object) -> object:
    # Pydantic would read 20240315090000 (the DVCQG yyyyMMddHHmmss format) as a Unix timestamp
    # in milliseconds and yield a date in the 27th century; partner formats belong in mappings.
    if isinstance(value, int | float) or (isinstance(value, str) and value.strip().isdigit()):
        raise PydanticCustomError(
            "datetime_format",
            "datetime must be ISO 8601 with a UTC offset, e.g. {example}; "
            "convert partner formats such as yyyyMMddHHmmss in the mapping",
            {"example": _EXAMPLE},
        )
    return value


def to_vn(value: datetime) -> datetime:
    """Convert an aware datetime to Asia/Ho_Chi_Minh; reject a naive one.

    A naive datetime is ambiguous (server time? UTC? local?), so it is refused rather than guessed.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise PydanticCustomError(
            "timezone_aware",
            "datetime must include a UTC offset, e.g. {example}",
            {"example": _EXAMPLE},
        )
    try:
        # The bus stores and compares instants in UTC and shows them in Vietnam's time: an
        # instant near year 1 or 9999 that either cannot express is refused here, not left
        # to overflow later.
        value.astimezone(UTC)
        return value.astimezone(VN_TZ)
    except OverflowError:
        raise PydanticCustomError(
            "datetime_range",
            "datetime is out of range: it must fall within years 1 to 9999 both in UTC and in "
            "Asia/Ho_Chi_Minh, e.g. {example}",
            {"example": _EXAMPLE},
        ) from None


VnDateTime = Annotated[datetime, BeforeValidator(_reject_numbers), AfterValidator(to_vn)]
"""An aware datetime, normalised to Asia/Ho_Chi_Minh; naive input is a validation error."""
