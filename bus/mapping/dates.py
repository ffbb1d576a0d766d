"""Date conversions between partner formats and the canonical ISO 8601 forms.

Canonical side: an aware datetime as ISO text (``2024-03-15T09:00:00+07:00``), a date
(``2024-03-15``), or a partial date of reduced ISO precision (``1990-05``, ``1990``). Partner
side: ``yyyyMMddHHmmss`` (DVCQG, local Vietnam time), ``yyyyMMdd`` (social insurance, with
``00`` for the unknown parts of a partial date), ``dd/MM/yyyy`` (judicial records), ``iso8601``.

Written by hand because the formats are fixed-width digit strings: slicing is simpler and much
faster than a general parser, and each format's rule is stated here once.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Final, Literal

from contracts import VN_TZ

Precision = Literal["day", "month", "year"]
FORMATS: Final = ("yyyyMMddHHmmss", "yyyyMMdd", "dd/MM/yyyy", "iso8601", "iso-date")
"""The date formats a spec may name."""


class DateError(ValueError):
    """Raised when a value does not match the date format the mapping expects."""


def parse(
    text: object, fmt: str, *, as_: str | None = None, precision: Precision | None = None
) -> str:
    """A partner date to canonical ISO text.

    ``as_="datetime"`` turns a date-only format into local midnight; ``precision`` (from the
    partner's partial-date flag) reduces ``yyyyMMdd`` to ``yyyy-MM`` or ``yyyy``.
    """
    if not isinstance(text, str):
        raise DateError(f"expected text in format {fmt}, got {type(text).__name__}")
    try:
        if fmt == "yyyyMMddHHmmss":
            moment = _compact_datetime(text)
            return moment.date().isoformat() if as_ == "date" else moment.isoformat()
        if fmt == "yyyyMMdd":
            return _partial_or_date(text, precision, as_)
        if fmt == "dd/MM/yyyy":
            day = _slashed(text)
            return _date_as(day, as_)
        if fmt == "iso8601":
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                raise DateError(f"{text!r} has no UTC offset; ISO 8601 partners must send one")
            moment = moment.astimezone(VN_TZ)
            return moment.date().isoformat() if as_ == "date" else moment.isoformat()
        if fmt == "iso-date":
            return _date_as(date.fromisoformat(text), as_)
    except DateError:
        raise
    except ValueError as exc:
        raise DateError(f"{text!r} is not a valid {fmt} date: {exc}") from exc
    raise DateError(f"unknown date format {fmt!r}; known: {', '.join(FORMATS)}")


def format_(value: object, fmt: str) -> str:
    """A canonical ISO date or datetime (text or object) to a partner's format."""
    if isinstance(value, str):
        iso = value
    elif isinstance(value, datetime | date):
        iso = value.isoformat()
    else:
        raise DateError(f"expected an ISO date or datetime, got {type(value).__name__}")
    try:
        if fmt == "yyyyMMdd":
            year, month, day = _parts(iso)
            return f"{year:04d}{month:02d}{day:02d}"
        moment = _as_local_datetime(iso)
        if fmt == "yyyyMMddHHmmss":
            return moment.strftime("%Y%m%d%H%M%S")
        if fmt == "dd/MM/yyyy":
            return moment.strftime("%d/%m/%Y")
        if fmt == "iso8601":
            return moment.isoformat()
        if fmt == "iso-date":
            return moment.date().isoformat()
    except ValueError as exc:
        raise DateError(f"{iso!r} is not an ISO date or datetime: {exc}") from exc
    raise DateError(f"unknown date format {fmt!r}; known: {', '.join(FORMATS)}")


def precision_of(value: object) -> Precision:
    """The precision of a canonical (possibly partial) ISO date: day, month or year."""
    if not isinstance(value, str):
        raise DateError(f"expected an ISO date, got {type(value).__name__}")
    length = len(value.split("T")[0])
    if length == 4:
        return "year"
    if length == 7:
        return "month"
    if length >= 10:
        return "day"
    raise DateError(f"{value!r} is not an ISO date (yyyy, yyyy-MM or yyyy-MM-dd)")


def _compact_datetime(text: str) -> datetime:
    if len(text) != 14 or not text.isdigit():
        raise DateError(f"{text!r} is not yyyyMMddHHmmss (14 digits)")
    return datetime(
        int(text[0:4]), int(text[4:6]), int(text[6:8]),
        int(text[8:10]), int(text[10:12]), int(text[12:14]), tzinfo=VN_TZ,
    )  # fmt: skip


def _partial_or_date(text: str, precision: Precision | None, as_: str | None) -> str:
    if len(text) != 8 or not text.isdigit():
        raise DateError(f"{text!r} is not yyyyMMdd (8 digits)")
    year, month, day = int(text[0:4]), int(text[4:6]), int(text[6:8])
    if precision is None:  # no flag: the zeros say what is unknown
        precision = "year" if month == 0 else "month" if day == 0 else "day"
    if precision == "year":
        return f"{year:04d}"
    if precision == "month":
        date(year, month, 1)  # validates the month
        return f"{year:04d}-{month:02d}"
    return _date_as(date(year, month, day), as_)


def _slashed(text: str) -> date:
    parts = text.split("/")
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or len(parts[2]) != 4:
        raise DateError(f"{text!r} is not dd/MM/yyyy")
    return date(int(parts[2]), int(parts[1]), int(parts[0]))


def _date_as(day: date, as_: str | None) -> str:
    if as_ == "datetime":
        return datetime.combine(day, time(0, 0), tzinfo=VN_TZ).isoformat()
    return day.isoformat()


def _parts(iso: str) -> tuple[int, int, int]:
    head = iso.split("T")[0]
    pieces = head.split("-")
    if len(pieces) == 1 and len(pieces[0]) == 4 and pieces[0].isdigit():
        date(int(pieces[0]), 1, 1)  # a real year (0000 is not one)
        return int(pieces[0]), 0, 0
    if len(pieces) == 2 and len(pieces[0]) == 4 and len(pieces[1]) == 2:
        year, month = int(pieces[0]), int(pieces[1])
        date(year, month, 1)  # a real month: 1990-13 and 1990-00 are refused, as inbound does
        return year, month, 0
    if "T" in iso:
        moment = _as_local_datetime(iso)
        return moment.year, moment.month, moment.day
    day = date.fromisoformat(head)
    return day.year, day.month, day.day


def _as_local_datetime(iso: str) -> datetime:
    if "T" not in iso and len(iso) == 10:
        return datetime.combine(date.fromisoformat(iso), time(0, 0), tzinfo=VN_TZ)
    moment = datetime.fromisoformat(iso)
    if moment.tzinfo is None:
        raise ValueError("a canonical datetime always has a UTC offset")
    return moment.astimezone(VN_TZ)
